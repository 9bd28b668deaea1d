"""Fit an SRGAN: build the Trainer from the config, resume from a checkpoint, report the result.

This is the one entry point the CLI and the Prefect training task share.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.strategies import DDPStrategy, Strategy

from srgan.checkpointing import BEST, IterationCheckpoint, find_resume_checkpoint, load_checkpoint
from srgan.config import METRIC_HIGHER_IS_BETTER, ConfigError, TrainerConfig, TrainingConfig
from srgan.lineage import TrainingLineage
from srgan.module import SRGANModule

log = logging.getLogger(__name__)


class InitCheckpointError(ValueError):
    """A warm-start checkpoint does not fit the configured architecture."""


@dataclass
class FitResult:
    """What a training run produced (small: paths and numbers)."""

    run_dir: str
    iteration: int
    metrics: dict[str, float]
    last_checkpoint: str | None
    best_checkpoint: str | None
    preview: str | None
    resumed_from: str | None
    seconds: float
    device: str
    precision: str
    metric_history: list[dict[str, float]] = field(default_factory=list)


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed when the run goes on a CUDA GPU, float32 elsewhere.

    Args:
        accelerator: ``trainer.accelerator``. ``gpu``, ``cuda`` and ``auto`` run on CUDA when it
            is available; ``cpu`` (or any other accelerator) means float32 even on a GPU machine.
    """
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_cuda else "32-true"


def device_name(device: torch.device) -> str:
    """A human-readable name of the device a run trained on (its root device)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def warm_start(module: SRGANModule, checkpoint_uri: str) -> None:
    """Load G, D and EMA weights from another run's checkpoint (optimizers start fresh).

    Raises:
        InitCheckpointError: the checkpoint's networks differ from the configured ones.
    """
    state = load_checkpoint(checkpoint_uri)["state_dict"]
    wanted = {
        k for k in module.state_dict() if k.split(".")[0] in {"generator", "discriminator", "ema"}
    }
    weights = {k: v for k, v in state.items() if k in wanted}
    own = module.state_dict()
    missing = sorted(wanted - weights.keys())
    shapes = sorted(k for k, v in weights.items() if tuple(v.shape) != tuple(own[k].shape))
    if missing or shapes:
        detail = f"missing {missing[:5]}" if missing else f"shape mismatch in {shapes[:5]}"
        raise InitCheckpointError(
            f"init-from checkpoint {checkpoint_uri} has a different architecture ({detail}); "
            "use a checkpoint trained with the same generator/discriminator, bands and scale"
        )
    module.load_state_dict(weights, strict=False)
    log.info("warm-started generator, discriminator and EMA from %s", checkpoint_uri)


#: Lightning's DDP strategies that start their ranks in new processes (spawn or fork) from the
#: calling one. ``fit`` reads the module's iteration counter, metrics and preview path back from
#: its own process, and those would stay in the started ranks.
_SPAWNING_DDP = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def devices_per_node(t: TrainerConfig) -> int:
    """How many devices ``trainer.accelerator`` and ``trainer.devices`` select on each node."""
    devices = t.devices
    if isinstance(devices, str) and "," in devices:  # Lightning reads "1,3" as ids, "2" as a count
        devices = [int(i) for i in devices.split(",") if i.strip()]
    if isinstance(devices, list):
        return len(devices)
    if devices not in ("auto", -1, "-1"):
        return int(devices)
    gpu = t.accelerator in ("auto", "gpu", "cuda") and CUDAAccelerator.is_available()
    return CUDAAccelerator.auto_device_count() if gpu else 1


def trainer_strategy(t: TrainerConfig) -> str | Strategy:
    """The Lightning strategy for ``trainer.strategy``, with DDP fitted to the manual D/G step.

    Each backward of the SRGAN step reaches one network only (D's loss sees a detached SR image,
    G's loss a D whose parameters are toggled off, and pretraining never runs D), so DDP has to
    look for unused parameters at every backward; otherwise its reducer waits for gradients that
    never come and the second step fails. ``ddp`` (also ``ddp_find_unused_parameters_true``)
    therefore becomes a :class:`~lightning.pytorch.strategies.DDPStrategy` with
    ``find_unused_parameters=True``, and ``auto`` on several devices or nodes means ``ddp``, as in
    Lightning. Other names (``fsdp``, ``deepspeed``, ...) go to Lightning unchanged.

    Raises:
        ConfigError: ``ddp_spawn``, ``ddp_fork`` or ``ddp_notebook`` (their ranks run in child
            processes, and the iteration counter and results of the fit stay there), or a DDP
            name that turns the detection of unused parameters off.
    """
    name = t.strategy
    if name == "auto" and devices_per_node(t) * t.num_nodes > 1:
        name = "ddp"
    base, _, detection = name.partition("_find_unused_parameters_")
    if base in _SPAWNING_DDP:
        raise ConfigError(
            f"trainer.strategy={name!r} is not supported: it trains in spawned or forked child "
            "processes, and the run's iteration counter and results do not come back from them. "
            "Use 'ddp' (Lightning re-runs the training command once per extra device), or start "
            "the ranks with torchrun (README: 'Training on several GPUs or nodes')."
        )
    if base == "ddp" and detection == "false":
        raise ConfigError(
            f"trainer.strategy={name!r} cannot train the SRGAN: its D and G steps leave the "
            "other network without gradients, which DDP must detect. Use 'ddp'."
        )
    if base == "ddp" and detection in ("", "true"):
        return DDPStrategy(start_method="popen", find_unused_parameters=True)
    return name


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class RunCSVLogger(CSVLogger):
    """``<run_dir>/logs/metrics.csv`` across attempts: a resumed run appends to the rows of the
    attempts before it (the steps after the last checkpoint appear again, from the attempt
    that redid them)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if not isinstance(self._experiment, ExperimentWriter):
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def build_trainer(
    config: TrainingConfig,
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool = False,
) -> tuple[Trainer, IterationCheckpoint]:
    """A Trainer wired for the SRGAN: iteration checkpoints, best checkpoint, CSV logs."""
    t = config.trainer
    run_dir = str(run_dir)
    ckpt_dir = f"{run_dir.rstrip('/')}/checkpoints"
    last = IterationCheckpoint(ckpt_dir, t.checkpoint_every_n_iterations)
    metric = config.validation.best_metric
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename=BEST.removesuffix(".ckpt"),
        monitor=f"val_metrics/{metric}",
        mode="max" if METRIC_HIGHER_IS_BETTER[metric] else "min",
        save_top_k=1,
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    trainer = Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=trainer_strategy(t),
        num_nodes=t.num_nodes,
        precision=t.precision or default_precision(t.accelerator),  # type: ignore[arg-type]
        max_epochs=t.max_epochs if t.max_epochs is not None else -1,
        max_steps=-1,
        val_check_interval=config.validation.every_n_iterations,
        check_val_every_n_epoch=None,
        limit_val_batches=config.validation.limit_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_iterations,
        logger=RunCSVLogger(run_dir, name="logs", version=""),
        callbacks=[last, best, TrainingLineage(run_dir), *callbacks],
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        default_root_dir=run_dir,
        use_distributed_sampler=False,
        deterministic=t.deterministic,
    )
    return trainer, last


def fit(
    config: TrainingConfig,
    datamodule: LightningDataModule,
    run_dir: str | Path,
    *,
    resume: bool = True,
    init_from: str | None = None,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool = False,
    final_validation: bool = True,
) -> FitResult:
    """Train (or continue training) an SRGAN into ``run_dir``.

    If ``resume`` and ``<run_dir>/checkpoints`` holds a loadable ``last.ckpt`` (or its previous
    copy), training continues from it with optimizer, scheduler, EMA, iteration counter, data
    position and RNG states restored; if it holds none, training starts fresh (from ``init_from``
    if given).

    Returns:
        a :class:`FitResult` with the final validation metrics (EMA weights) and checkpoint paths.

    Raises:
        CheckpointError: ``resume`` and the run's checkpoints exist but none loads (the files are
            left in place; training does not restart from iteration 0).
        InitCheckpointError: ``init_from`` has another architecture than the config.
    """
    lightning.seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = SRGANModule(config)
    module.preview_dir = f"{str(run_dir).rstrip('/')}/previews"
    trainer, last = build_trainer(config, run_dir, callbacks, progress_bar)
    resume_from = find_resume_checkpoint(last.dirpath) if resume else None
    if resume_from is None and init_from:
        warm_start(module, init_from)
    if resume_from:
        log.info("resuming from %s", resume_from)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    metrics = dict(module.last_val_metrics)
    if final_validation:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        metrics = dict(module.last_val_metrics) or {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_metrics/")
        }
    seconds = time.perf_counter() - started
    best = trainer.checkpoint_callback
    best_path = best.best_model_path if isinstance(best, ModelCheckpoint) else ""
    return FitResult(
        run_dir=str(run_dir),
        iteration=module.iteration,
        metrics=metrics,
        last_checkpoint=last.last_path if last.last_saved_iteration is not None else None,
        best_checkpoint=best_path or None,
        preview=module.last_preview_path,
        metric_history=[dict(row) for row in module.val_history],
        resumed_from=resume_from,
        seconds=seconds,
        device=device_name(trainer.strategy.root_device),
        precision=str(trainer.precision),
    )


def describe(result: FitResult) -> dict[str, Any]:
    """A JSON-friendly view of a :class:`FitResult`."""
    return dict(result.__dict__)
