"""The SRGAN LightningModule: manual D/G alternation, pretraining, ramped adversarial weight, EMA.

Example::

    cfg = load_config("cpu-tiny")
    module = SRGANModule(cfg)
    trainer = lightning.Trainer(max_epochs=1)
    trainer.fit(module, datamodule)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import lightning
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from packaging.version import Version
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from srgan import software_version
from srgan.build import (
    content_loss_from_config,
    discriminator_from_config,
    generator_from_config,
    objective_from_config,
    optimizer_for,
    plateau_scheduler,
    warmup_scheduler,
)
from srgan.checkpointing import record_data_position
from srgan.config import OptimizerConfig, TrainingConfig, validate_config
from srgan.ema import GeneratorEMA
from srgan.metrics import SRValidationMetrics
from srgan.preview import preview_grid, write_previews
from srgan.rng import restore_rng_states, rng_states
from srgan.schedules import adversarial_weight, is_pretraining, plateau_steps, warmup_steps
from srgan.step_tuning import (
    match_state_layout,
    set_fused,
    set_malloc_retention,
    to_channels_last,
)

if Version(lightning.__version__) < Version("2.0"):  # pragma: no cover - guarded by pyproject
    raise ImportError(f"s2-srgan needs Lightning >= 2, found {lightning.__version__}")

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "srgan"


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training stops and the last good checkpoint is kept."""


class SRGANModule(LightningModule):
    """Super-resolution GAN with manual optimization.

    Every step-based schedule runs on :attr:`iteration`, the number of training batches completed,
    which is saved in checkpoints. Lightning's ``global_step`` counts optimizer steps (one per
    pretraining batch, two per adversarial batch) and drives nothing here.

    Args:
        config: a :class:`~srgan.config.TrainingConfig` or a mapping that validates as one.

    Batches are ``(lr, hr)``: float32 ``(B, C, h, w)`` and ``(B, C, h*scale, w*scale)``.
    """

    def __init__(self, config: TrainingConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, TrainingConfig) else validate_config(config)
        self.config = cfg
        self.save_hyperparameters({"config": cfg.model_dump(mode="json")})
        self.automatic_optimization = False
        self.generator = generator_from_config(cfg)
        self.discriminator = discriminator_from_config(cfg)
        self.content_loss = content_loss_from_config(cfg)
        self.objective = objective_from_config(cfg)
        self.ema = (
            GeneratorEMA(self.generator, cfg.ema.decay, cfg.ema.start_iteration, cfg.ema.warmup)
            if cfg.ema.enabled
            else None
        )
        self.val_metrics = SRValidationMetrics(cfg.data.scale, cfg.data_range, cfg.in_bands)
        self.iteration = 0
        #: where validation previews go: a local folder or an fsspec URL (``None``: nowhere)
        self.preview_dir: str | None = None
        self.last_preview_path: str | None = None
        #: ``{"iteration", "val_metrics/..."}`` of every validation of the fit, kept in checkpoints
        self.val_history: list[dict[str, float]] = []
        self.last_val_metrics: dict[str, float] = {}
        self._preview_batch: tuple[Tensor, ...] | None = None
        self._in_step = False

    def is_pretraining(self) -> bool:
        """The gate of the step: content-only generator training for the first iterations."""
        return is_pretraining(self.iteration, self.config.schedule.pretrain_iterations)

    def adversarial_weight(self) -> float:
        """The adversarial weight of the current iteration (0 while pretraining)."""
        s = self.config.schedule
        return adversarial_weight(
            self.iteration,
            s.pretrain_iterations,
            s.ramp_iterations,
            self.config.losses.adv_weight,
            s.ramp,
        )

    @property
    def in_step(self) -> bool:
        """True while a training step is mutating weights (a checkpoint now would be torn)."""
        return self._in_step

    def inference_generator(self) -> torch.nn.Module:
        """EMA generator once it has been updated, the raw generator otherwise."""
        if self.ema is not None and self.ema.active:
            return self.ema.module
        return self.generator

    def forward(self, lr: Tensor) -> Tensor:
        """Super-resolve ``(B, C, h, w)`` with the inference generator."""
        return self.inference_generator()(lr)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.config.trainer.channels_last:
            # Before DDP wraps the module and any optimizer state exists: DDP lays out its
            # gradient buckets by the parameters' strides at that moment, and a parameter made
            # NHWC afterwards gets its averaged gradient back with the elements mixed up.
            self.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        if self.automatic_optimization:
            raise RuntimeError(
                "SRGANModule needs manual optimization (automatic_optimization=False)"
            )
        t = self.config.trainer
        if t.retain_freed_memory:
            set_malloc_retention(True)
        if t.compile:
            self.generator.compile()
            self.discriminator.compile()
        s = self.config.schedule
        log.info(
            "SRGAN fit (Lightning %s, manual optimization) from iteration %d: pretraining until "
            "%d, adversarial ramp (%s) over %d, beta=%g, EMA %s",
            lightning.__version__,
            self.iteration,
            s.pretrain_iterations,
            s.ramp,
            s.ramp_iterations,
            self.config.losses.adv_weight,
            f"from iteration {self.config.ema.start_iteration}" if self.ema else "off",
        )

    def configure_optimizers(self) -> Any:
        o = self.config.optim
        opt_g = optimizer_for(list(self.generator.parameters()), o.generator)
        opt_d = optimizer_for(list(self.discriminator.parameters()), o.discriminator)
        set_fused(opt_g, o.fused)
        set_fused(opt_d, o.fused)
        schedulers = [
            warmup_scheduler(opt_g, o.generator),
            warmup_scheduler(opt_d, o.discriminator),
            plateau_scheduler(opt_g, o.generator, o.plateau_metric),
            plateau_scheduler(opt_d, o.discriminator, o.plateau_metric),
        ]
        return [opt_g, opt_d], schedulers

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        # A run resumed after it already reached max_iterations (a finished run re-run into the
        # same directory, a retry after a failure past the last step) must not train further.
        return -1 if self._stop_at_max_iterations() else None  # -1: Lightning ends the epoch

    def on_train_start(self) -> None:
        # A resumed optimizer carries the "fused" flag and the state layout it was saved with.
        for optimizer in self.trainer.optimizers:
            set_fused(optimizer, self.config.optim.fused)
            match_state_layout(optimizer)

    def on_fit_end(self) -> None:
        # NHWC is a training-speed choice; inference and metrics outside fit see plain NCHW.
        if self.config.trainer.channels_last:
            self.to(memory_format=torch.contiguous_format)
        if self.config.trainer.retain_freed_memory:
            set_malloc_retention(False)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        lr, hr = batch
        if self.config.trainer.channels_last:
            lr, hr = to_channels_last(lr), to_channels_last(hr)
        opt_g, opt_d = self.optimizers()  # type: ignore[misc,attr-defined]
        pretraining = self.is_pretraining()
        adv_weight = self.adversarial_weight()
        self._in_step = True

        sr = self.generator(lr)
        if pretraining:
            d_logs = self._discriminator_zeros(hr)
            content, parts = self.content_loss(sr, hr)
            adv_loss = torch.zeros((), device=hr.device)
            g_total = content
            self._check_finite({"generator/content_loss": content})
            self._optimizer_step(opt_g, g_total, self.config.optim.generator)
        else:
            d_logs = self._discriminator_step(opt_d, hr, sr)
            self.toggle_optimizer(opt_g)
            content, parts = self.content_loss(sr, hr)
            fake_logits = self.discriminator(sr)
            real_logits = (
                self.discriminator(hr).detach() if self.objective.needs_real_for_generator else None
            )
            adv_loss = self.objective.generator_loss(fake_logits, real_logits)
            g_total = content + adv_weight * adv_loss
            self._check_finite(
                {"generator/content_loss": content, "generator/adversarial_loss": adv_loss}
            )
            self._optimizer_step(opt_g, g_total, self.config.optim.generator, toggled=True)
            self.untoggle_optimizer(opt_g)

        ema_active = self.ema is not None and self.ema.should_update(self.iteration)
        if self.ema is not None and ema_active:
            self.ema.update(self.generator)
        lrs = (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
        self._step_warmup()
        self._in_step = False

        logs: dict[str, Tensor | float] = {
            "training/pretrain_phase": float(pretraining),
            "training/adv_loss_weight": adv_weight,
            "training/iteration": float(self.iteration),
            "generator/content_loss": content.detach(),
            "generator/adversarial_loss": adv_loss.detach(),
            "generator/total_loss": g_total.detach(),
            "lr/generator": lrs[0],
            "lr/discriminator": lrs[1],
            "ema/active": float(ema_active),
            **d_logs,
            **{f"generator/content_{k}": v.detach() for k, v in parts.items()},
        }
        if self.iteration % self.config.validation.train_metrics_every == 0:
            logs.update(self._train_metrics(sr.detach(), hr))
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=hr.shape[0])
        self._announce_phase_change()
        self.iteration += 1
        self._stop_at_max_iterations()

    def _discriminator_zeros(self, hr: Tensor) -> dict[str, Tensor | float]:
        zero = torch.zeros((), device=hr.device)
        return {
            "discriminator/adversarial_loss": zero,
            "discriminator/D(y)_prob": zero,
            "discriminator/D(G(x))_prob": zero,
            "discriminator/r1_penalty": zero,
        }

    def _discriminator_step(self, opt_d: Any, hr: Tensor, sr: Tensor) -> dict[str, Tensor | float]:
        self.toggle_optimizer(opt_d)
        use_r1 = self.objective.r1_gamma > 0
        real = hr.detach().requires_grad_(True) if use_r1 else hr
        if self.config.discriminator.joint_real_fake:
            logits = self.discriminator(torch.cat([real, sr.detach()]))
            real_logits, fake_logits = logits.split([real.shape[0], sr.shape[0]])
        else:
            real_logits, fake_logits = self.discriminator.score_pair(real, sr.detach())
        d_loss = self.objective.discriminator_loss(real_logits, fake_logits)
        r1 = self.objective.penalty(real, real_logits)
        self._check_finite(
            {"discriminator/adversarial_loss": d_loss, "discriminator/r1_penalty": r1}
        )
        self._optimizer_step(opt_d, d_loss + r1, self.config.optim.discriminator, toggled=True)
        self.untoggle_optimizer(opt_d)
        return {
            "discriminator/adversarial_loss": d_loss.detach(),
            "discriminator/D(y)_prob": self.objective.probabilities(real_logits.detach()),
            "discriminator/D(G(x))_prob": self.objective.probabilities(fake_logits.detach()),
            "discriminator/r1_penalty": r1.detach(),
        }

    def _optimizer_step(
        self,
        optimizer: Any,
        loss: Tensor,
        cfg: OptimizerConfig,
        toggled: bool = False,
    ) -> None:
        if not toggled:
            self.toggle_optimizer(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if cfg.grad_clip_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=cfg.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        optimizer.step()
        if not toggled:
            self.untoggle_optimizer(optimizer)

    def _check_finite(self, terms: dict[str, Tensor]) -> None:
        if self.iteration % self.config.trainer.finite_check_every:
            return
        # one host sync for all terms; only unpacked when something is wrong
        values = torch.stack([t.detach().float() for t in terms.values()])
        if bool(torch.isfinite(values).all()):
            return
        bad = [n for n, v in zip(terms, values.tolist(), strict=True) if not math.isfinite(v)]
        self._in_step = True  # weights may be half-updated: no checkpoint from this state
        raise NonFiniteLossError(
            f"non-finite {', '.join(bad)} at iteration {self.iteration}; training stopped, the "
            "last good checkpoint is kept. Lower the learning rate, enable gradient clipping "
            "(optim.*.grad_clip_norm) or check the input data for NaN."
        )

    def _step_warmup(self) -> None:
        warm_g, warm_d, _, _ = self.lr_schedulers()  # type: ignore[misc]
        step_g, step_d = warmup_steps(self.iteration, self.config)
        if step_g:
            warm_g.step()
        if step_d:
            warm_d.step()

    def _train_metrics(self, sr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        mse = F.mse_loss(sr.float(), hr.float())
        rng = self.config.data_range
        return {
            "train_metrics/l1": F.l1_loss(sr.float(), hr.float()),
            "train_metrics/psnr": 10 * torch.log10(rng**2 / mse.clamp_min(1e-12)),
        }

    def _announce_phase_change(self) -> None:
        s = self.config.schedule
        if self.iteration == s.pretrain_iterations and s.pretrain_iterations > 0:
            log.info("iteration %d: pretraining done, adversarial training starts", self.iteration)
        if self.ema is not None and self.iteration == self.ema.start_iteration:
            log.info("iteration %d: EMA of the generator starts", self.iteration)

    def _stop_at_max_iterations(self) -> bool:
        max_it = self.config.schedule.max_iterations
        if max_it is not None and self.iteration >= max_it:
            self.trainer.should_stop = True
            return True
        return False

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        lr, hr = batch
        # NHWC weights give NHWC outputs; the metrics flatten with view()
        sr = self.inference_generator()(lr).contiguous()
        bicubic = self.val_metrics.update(sr, lr, hr)
        if batch_idx == 0:
            n = self.config.validation.preview_samples
            self._preview_batch = tuple(t[:n].detach().float().cpu() for t in (lr, bicubic, sr, hr))

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()
        self.val_metrics.reset()
        # torchmetrics has already reduced these over all ranks, so averaging them again changes
        # nothing; sync_dist states that they are global values (ModelCheckpoint and the plateau
        # schedulers on every rank must see the same number).
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        self.last_val_metrics = metrics
        if self.trainer.state.fn == "fit":  # a stand-alone validate() has no schedulers
            self.val_history.append({"iteration": float(self.iteration), **metrics})
            self._step_plateau(metrics)
        self._write_preview()

    def _step_plateau(self, metrics: dict[str, float]) -> None:
        value = metrics[f"val_metrics/{self.config.optim.plateau_metric}"]
        _, _, plateau_g, plateau_d = self.lr_schedulers()  # type: ignore[misc]
        assert isinstance(plateau_g, ReduceLROnPlateau) and isinstance(plateau_d, ReduceLROnPlateau)
        step_g, step_d = plateau_steps(self.iteration, self.config)
        if step_g:
            plateau_g.step(value)
        if step_d:
            plateau_d.step(value)

    def _write_preview(self) -> None:
        if self.preview_dir is None or self._preview_batch is None:
            return
        if not self.trainer.is_global_zero:  # under DDP the ranks would race on the same files
            return
        lr, bicubic, sr, hr = self._preview_batch
        grid = preview_grid(lr, bicubic, sr, hr, bands=self.config.validation.preview_bands)
        self.last_preview_path = write_previews(grid, self.preview_dir, self.iteration)

    def predict_step(self, batch: Tensor | tuple[Tensor, ...], batch_idx: int) -> Tensor:
        lr = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:
            # the resume point: batches of this epoch whose step finished (a checkpoint written
            # on an error before a step would otherwise count the fetched-but-unprocessed batch)
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed  # type: ignore[attr-defined]
            record_data_position(checkpoint, done)
        checkpoint[CHECKPOINT_KEY] = {
            "format": 1,
            "software_version": software_version(),
            "iteration": self.iteration,
            "rng": rng_states(),
            "val_metrics": dict(self.last_val_metrics),
            "val_history": [dict(row) for row in self.val_history],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return
        self.iteration = int(state["iteration"])
        self.last_val_metrics = dict(state.get("val_metrics", {}))
        self.val_history = [dict(row) for row in state.get("val_history", [])]
        if self._trainer is not None:  # resuming a fit, not a weights-only load for inference
            restore_rng_states(state["rng"])
