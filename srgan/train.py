"""Fit an SRGAN: build the Trainer from the config, resume from a checkpoint, report the result.

This is the one entry point the CLI and the Prefect training task share.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import lightning
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, Strategy

from datasets.lease import Lease
from srgan.checkpointing import (
    BEST,
    IterationCheckpoint,
    finished_under,
    load_checkpoint,
    resume_point,
)
from srgan.config import METRIC_HIGHER_IS_BETTER, ConfigError, TrainerConfig, TrainingConfig
from srgan.devices import device_name
from srgan.fit_result import FitResult, finished_result
from srgan.host_tuning import applied_step_settings
from srgan.lineage_callback import TrainingLineage
from srgan.module import SRGANModule
from srgan.run_folder import (
    LeaseGuard,
    is_finished,
    is_launching_process,
    run_lease,
    training_limits,
)
from srgan.step_settings import (
    built_in_precision,
    measured_step_settings,
    resolve_step_settings,
    training_device,
)
from srgan.step_trial import tune_step
from srgan.tracking import run_loggers
from srgan.validation_recorder import ValidationRecorder

log = logging.getLogger(__name__)


class InitCheckpointError(ValueError):
    """A warm-start checkpoint does not fit the configured architecture."""


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed when the run goes on a CUDA GPU, float32 elsewhere.

    Args:
        accelerator: ``trainer.accelerator``. ``gpu``, ``cuda`` and ``auto`` run on CUDA when it
            is available; ``cpu`` (or any other accelerator) means float32 even on a GPU machine.
    """
    return built_in_precision(TrainerConfig(accelerator=accelerator))


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
            "the ranks with torchrun (docs/scaling.md: 'Training on several GPUs or nodes')."
        )
    if base == "ddp" and detection == "false":
        raise ConfigError(
            f"trainer.strategy={name!r} cannot train the SRGAN: its D and G steps leave the "
            "other network without gradients, which DDP must detect. Use 'ddp'."
        )
    if base == "ddp" and detection in ("", "true"):
        return DDPStrategy(start_method="popen", find_unused_parameters=True)
    return name


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, without its warning about a non-empty folder: a run
    folder holds the checkpoints its fit resumes from, so that warning would come with every
    resume and mean nothing."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
            super().setup(trainer, pl_module, stage)


def build_trainer(
    config: TrainingConfig,
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool = False,
) -> tuple[Trainer, IterationCheckpoint]:
    """A Trainer wired for the SRGAN: iteration checkpoints, best checkpoint, CSV logs."""
    t = config.trainer
    if t.autotune == "trial" and measured_step_settings(config, training_device(t)) is None:
        if devices_per_node(t) * t.num_nodes == 1:
            log.info("no step settings measured for this config here: a short trial first")
            tune_step(config)
        else:
            log.info("step settings not measured here; run `s2-srgan tune` before a DDP fit")
    run_dir = str(run_dir)
    ckpt_dir = f"{run_dir.rstrip('/')}/checkpoints"
    last = IterationCheckpoint(ckpt_dir, t.checkpoint_every_n_iterations)
    metric = config.validation.best_metric
    best = BestCheckpoint(
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
        precision=resolve_step_settings(config).precision,  # type: ignore[arg-type]
        max_epochs=t.max_epochs if t.max_epochs is not None else -1,
        max_steps=-1,
        val_check_interval=config.validation.every_n_iterations,
        check_val_every_n_epoch=None,
        limit_val_batches=config.validation.limit_batches,
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_iterations,
        logger=run_loggers(t.logger, run_dir),
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
    owner: str | None = None,
) -> FitResult:
    """Train (or continue training) an SRGAN into ``run_dir``.

    The run folder's lease is taken first (:mod:`srgan.run_folder`): while another owner trains
    into ``run_dir`` this raises at once, before anything is written. If ``resume`` and
    ``<run_dir>/checkpoints`` holds a loadable ``last.ckpt`` (or its previous copy), training
    continues from it with optimizer, scheduler, EMA, iteration counter, data position and RNG
    states restored; if it holds none, training starts fresh (from ``init_from`` if given). A run
    that already trained as far as ``config`` asks is left as it is: nothing is trained, validated
    or written, and the result (``already_finished``) comes from its checkpoint.

    Args:
        owner: who trains (default: this process). A run started again by the same owner (a
            retry of the same flow run) takes the folder over from its crashed attempt.

    Returns:
        a :class:`FitResult` with the final validation metrics (EMA weights) and checkpoint paths.

    Raises:
        LeaseHeldError: another owner is training into ``run_dir``.
        CheckpointError: ``resume`` and the run's checkpoints exist but none loads (the files are
            left in place; training does not restart from iteration 0).
        InitCheckpointError: ``init_from`` has another architecture than the config.
        StorageError: ``run_dir`` is on S3 and its bucket is missing, refused or unreachable.
    """
    run_dir = str(run_dir)
    # a DDP rank of a run whose rank 0 holds the lease takes none itself
    guard = run_lease(run_dir, owner) if is_launching_process() else nullcontext(None)
    with guard as lease:
        return _fit(
            config,
            datamodule,
            run_dir,
            resume,
            init_from,
            callbacks,
            progress_bar,
            final_validation,
            lease,
        )


def _fit(
    config: TrainingConfig,
    datamodule: LightningDataModule,
    run_dir: str,
    resume: bool,
    init_from: str | None,
    callbacks: Sequence[Callback],
    progress_bar: bool,
    final_validation: bool,
    lease: Lease | None,
) -> FitResult:
    ckpt_dir = f"{run_dir.rstrip('/')}/checkpoints"
    found = resume_point(ckpt_dir) if resume else None
    resume_from = found[0] if found else None
    if found is not None and is_finished(found[1], config, finished_under(found[1])):
        return finished_result(config, run_dir, *found)
    lightning.seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = SRGANModule(config)
    recorder = ValidationRecorder(config.validation, f"{run_dir.rstrip('/')}/previews")
    guard = [LeaseGuard(lease)] if lease is not None else []
    trainer, last = build_trainer(config, run_dir, [recorder, *callbacks, *guard], progress_bar)
    last.limits = training_limits(config)
    if resume_from == last.last_path:
        last.last_loads = True  # it just loaded
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
        run_dir=run_dir,
        iteration=module.iteration,
        metrics=metrics,
        last_checkpoint=last.last_path if last.last_saved_iteration is not None else None,
        best_checkpoint=best_path or None,
        preview=recorder.last_preview,
        metric_history=[dict(row) for row in recorder.history],
        resumed_from=resume_from,
        seconds=seconds,
        device=device_name(trainer.strategy.root_device),
        precision=str(trainer.precision),
        store_version=config.data.version,
        step_settings=applied_step_settings(trainer),
    )
