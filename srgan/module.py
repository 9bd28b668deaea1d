"""The SRGAN LightningModule: manual D/G alternation, pretraining, ramped adversarial weight, EMA.

Example::

    cfg = load_config("cpu-tiny")
    module = SRGANModule(cfg)
    trainer = lightning.Trainer(max_epochs=1)
    trainer.fit(module, datamodule)

Host settings (NHWC, fused Adam, heap retention, compile) come with the module as its
:class:`~srgan.host_tuning.HostTuning` callback; :func:`srgan.train.fit` adds the validation
history and previews (:class:`~srgan.validation_recorder.ValidationRecorder`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningModule
from torch import Tensor
from torch.optim.lr_scheduler import ReduceLROnPlateau

from datasets.version import software_version
from srgan.build import (
    content_loss_from_config,
    discriminator_from_config,
    generator_from_config,
    objective_from_config,
    optimizers_from_config,
)
from srgan.checkpointing import record_data_position
from srgan.config import OptimizerConfig, TrainingConfig, validate_config
from srgan.ema import GeneratorEMA
from srgan.host_tuning import HostTuning
from srgan.losses.finite import NonFiniteLossError, check_finite
from srgan.metrics import SRValidationMetrics, batch_metrics
from srgan.rng import restore_rng_states, rng_states
from srgan.schedules import phase, plateau_steps, warmup_steps

__all__ = ["CHECKPOINT_KEY", "NonFiniteLossError", "SRGANModule"]

log = logging.getLogger(__name__)

#: Where the module keeps its own state (iteration counter, RNG states, ...) in a checkpoint.
CHECKPOINT_KEY = "srgan"
#: What the discriminator logs at every step (zeros while it does not train).
DISCRIMINATOR_KEYS = (
    "discriminator/adversarial_loss",
    "discriminator/D(y)_prob",
    "discriminator/D(G(x))_prob",
    "discriminator/r1_penalty",
)


class SRGANModule(LightningModule):
    """Super-resolution GAN with manual optimization.

    Every step-based schedule runs on :attr:`iteration`, the number of training batches completed,
    which is saved in checkpoints. Lightning's ``global_step`` counts optimizer steps (one per
    pretraining batch, two per adversarial batch) and drives nothing here.

    Args:
        config: a :class:`~srgan.config.TrainingConfig` or a mapping that validates as one.

    Attributes:
        iteration: Training batches completed; saved in checkpoints.
        last_val_metrics: ``val_metrics/*`` of the latest validation.
        in_step: True while a training step is mutating weights (a checkpoint now would be torn).

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
        self.last_val_metrics: dict[str, float] = {}
        self.in_step = False

    def inference_generator(self) -> torch.nn.Module:
        """EMA generator once it has been updated, the raw generator otherwise."""
        if self.ema is not None and self.ema.active:
            return self.ema.module
        return self.generator

    def forward(self, lr: Tensor) -> Tensor:
        """Super-resolve ``(B, C, h, w)`` with the inference generator."""
        return self.inference_generator()(lr)

    def configure_callbacks(self) -> list[Callback]:
        # with the module, so that every Trainer fitting it honours the config's host settings
        return [HostTuning(self.config)]

    def on_fit_start(self) -> None:
        s, ema = self.config.schedule, self.config.ema
        log.info(
            "SRGAN fit (Lightning %s, manual optimization) from iteration %d: pretraining until "
            "%d, adversarial ramp (%s) over %d, beta=%g, EMA %s",
            *(lightning.__version__, self.iteration, s.pretrain_iterations, s.ramp),
            *(s.ramp_iterations, self.config.losses.adv_weight),
            f"from iteration {ema.start_iteration}" if self.ema else "off",
        )

    def configure_optimizers(self) -> Any:
        return optimizers_from_config(self.config, self.generator, self.discriminator)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        # A run resumed after it already reached max_iterations (a finished run re-run into the
        # same directory, a retry after a failure past the last step) must not train further.
        return -1 if self._stop_at_max_iterations() else None  # -1: Lightning ends the epoch

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        lr, hr = batch
        opt_g, opt_d = self.optimizers()  # type: ignore[misc,attr-defined]
        pretraining, beta = phase(self.iteration, self.config)
        self.in_step = True  # until the step ends, a checkpoint would hold half-updated weights

        sr = self.generator(lr)
        if pretraining:  # the discriminator does not train; its values log as zeros
            d_logs = dict.fromkeys(DISCRIMINATOR_KEYS, torch.zeros((), device=hr.device))
        else:  # D on real and detached SR (plus R1)
            with self.toggled_optimizer(opt_d):
                d_loss, d_logs = self._discriminator_loss(hr, sr.detach())
                self._step(opt_d, d_loss, self.config.optim.discriminator)
        with self.toggled_optimizer(opt_g):  # G on content (+ beta × adversarial after pretraining)
            g_loss, g_logs = self._generator_loss(sr, hr, beta, adversarial=not pretraining)
            self._step(opt_g, g_loss, self.config.optim.generator)
        if self.ema is not None and self.ema.should_update(self.iteration):
            self.ema.update(self.generator)

        self._log_step({**g_logs, **d_logs}, sr.detach(), hr)
        self._step_warmup()
        self.in_step = False
        self.iteration += 1
        self._stop_at_max_iterations()

    def _log_step(self, losses: dict[str, Tensor], sr: Tensor, hr: Tensor) -> None:
        pretraining, beta = phase(self.iteration, self.config)
        ema_active = self.ema is not None and self.ema.should_update(self.iteration)
        opt_g, opt_d = self.optimizers()  # type: ignore[misc,attr-defined]
        logs: dict[str, Tensor | float] = {
            "training/pretrain_phase": float(pretraining),
            "training/adv_loss_weight": beta,
            "training/iteration": float(self.iteration),
            **losses,
            "lr/generator": opt_g.param_groups[0]["lr"],
            "lr/discriminator": opt_d.param_groups[0]["lr"],
            "ema/active": float(ema_active),
        }
        if self.iteration % self.config.validation.train_metrics_every == 0:
            logs.update(batch_metrics(sr, hr, self.config.data_range))
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=hr.shape[0])
        s = self.config.schedule
        if self.iteration == s.pretrain_iterations and s.pretrain_iterations > 0:
            log.info("iteration %d: pretraining done, adversarial training starts", self.iteration)
        if self.ema is not None and self.iteration == self.ema.start_iteration:
            log.info("iteration %d: EMA of the generator starts", self.iteration)

    def _discriminator_loss(self, hr: Tensor, sr: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss on real ``hr`` and (detached) ``sr``, plus R1; checked finite."""
        real = hr.detach().requires_grad_(True) if self.objective.r1_gamma > 0 else hr
        if self.config.discriminator.joint_real_fake:
            logits = self.discriminator(torch.cat([real, sr]))
            real_logits, fake_logits = logits.split([real.shape[0], sr.shape[0]])
        else:
            real_logits, fake_logits = self.discriminator.score_pair(real, sr)
        d_loss = self.objective.discriminator_loss(real_logits, fake_logits)
        r1 = self.objective.penalty(real, real_logits)
        self._check_finite(
            {"discriminator/adversarial_loss": d_loss, "discriminator/r1_penalty": r1}
        )
        return d_loss + r1, {
            "discriminator/adversarial_loss": d_loss.detach(),
            "discriminator/D(y)_prob": self.objective.probabilities(real_logits.detach()),
            "discriminator/D(G(x))_prob": self.objective.probabilities(fake_logits.detach()),
            "discriminator/r1_penalty": r1.detach(),
        }

    def _generator_loss(
        self, sr: Tensor, hr: Tensor, beta: float, adversarial: bool
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """G's content loss, plus ``beta`` × its adversarial loss when ``adversarial``."""
        content, parts = self.content_loss(sr, hr)
        adv_loss, total = torch.zeros((), device=hr.device), content
        if adversarial:
            fake_logits = self.discriminator(sr)
            needs_real = self.objective.needs_real_for_generator
            real_logits = self.discriminator(hr).detach() if needs_real else None
            adv_loss = self.objective.generator_loss(fake_logits, real_logits)
            total = content + beta * adv_loss
        self._check_finite(
            {"generator/content_loss": content, "generator/adversarial_loss": adv_loss}
        )
        return total, {
            "generator/content_loss": content.detach(),
            "generator/adversarial_loss": adv_loss.detach(),
            "generator/total_loss": total.detach(),
            **{f"generator/content_{k}": v.detach() for k, v in parts.items()},
        }

    def _step(self, optimizer: Any, loss: Tensor, cfg: OptimizerConfig) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if cfg.grad_clip_norm is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=cfg.grad_clip_norm, gradient_clip_algorithm="norm"
            )
        optimizer.step()

    def _check_finite(self, terms: dict[str, Tensor]) -> None:
        check_finite(self.iteration, self.config.trainer.finite_check_every, terms)

    def _step_warmup(self) -> None:
        warm_g, warm_d, _, _ = self.lr_schedulers()  # type: ignore[misc]
        step_g, step_d = warmup_steps(self.iteration, self.config)
        if step_g:
            warm_g.step()
        if step_d:
            warm_d.step()

    def _stop_at_max_iterations(self) -> bool:
        max_it = self.config.schedule.max_iterations
        if max_it is not None and self.iteration >= max_it:
            self.trainer.should_stop = True
            return True
        return False

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Accumulate the metrics of one batch; returns its SR (for previews, see
        :class:`~srgan.validation_recorder.ValidationRecorder`)."""
        lr, hr = batch
        # NHWC weights give NHWC outputs; the metrics flatten with view()
        sr = self.inference_generator()(lr).contiguous()
        self.val_metrics.update(sr, lr, hr)
        return sr

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
        if self.trainer.state.fn != "fit":  # a stand-alone validate() has no schedulers
            return
        value = metrics[f"val_metrics/{self.config.optim.plateau_metric}"]
        _, _, plateau_g, plateau_d = self.lr_schedulers()  # type: ignore[misc]
        assert isinstance(plateau_g, ReduceLROnPlateau) and isinstance(plateau_d, ReduceLROnPlateau)
        step_g, step_d = plateau_steps(self.iteration, self.config)
        if step_g:
            plateau_g.step(value)
        if step_d:
            plateau_d.step(value)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:
            # the resume point: batches of this epoch whose step finished (a checkpoint written
            # on an error before a step would otherwise count the fetched-but-unprocessed batch)
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed  # type: ignore[attr-defined]
            record_data_position(checkpoint, done)
        # callbacks (the validation history) may have added their part already
        checkpoint.setdefault(CHECKPOINT_KEY, {}).update(
            {
                "format": 1,
                "software_version": software_version(),
                "iteration": self.iteration,
                "rng": rng_states(),
                "val_metrics": dict(self.last_val_metrics),
            }
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            return
        self.iteration = int(state["iteration"])
        self.last_val_metrics = dict(state.get("val_metrics", {}))
        if self._trainer is not None:  # resuming a fit, not a weights-only load for inference
            restore_rng_states(state["rng"])
