"""What a training run produced (:class:`FitResult`), also for a run that had already finished."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import fsspec

from srgan.checkpointing import BEST
from srgan.config import TrainingConfig
from srgan.preview import preview_name
from srgan.run_folder import training_limits
from srgan.step_settings import StepSettings

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a training run produced: paths and numbers, all JSON-able (``asdict``).

    Attributes:
        run_dir: The run folder (local path or ``s3://`` URI).
        iteration: Training iterations completed.
        metrics: ``val_metrics/*`` of the final validation (EMA generator), with the bicubic
            baseline's values and the gains over it.
        last_checkpoint: ``last.ckpt``, if one was written; ``best_checkpoint`` likewise.
        preview: The latest preview PNG, if any.
        resumed_from: The checkpoint this fit continued from, if any.
        seconds: Wall time of the fit.
        device: What it trained on (e.g. ``cpu (2 threads)``); ``precision`` in which precision.
        metric_history: ``{"iteration", "val_metrics/*"}`` of every validation of the run.
        store_version: The patch-store version the run read (``data.version``).
        already_finished: The run had already trained as far as asked: nothing was trained,
            validated or written, and the values come from its checkpoint.
        step_settings: The step's speed settings and where each came from (config, measured
            on this machine, built-in).
    """

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
    store_version: str | None = None
    already_finished: bool = False
    step_settings: StepSettings | None = None

    def __post_init__(self) -> None:
        if isinstance(self.step_settings, dict):  # read back from JSON (the torchrun path)
            self.step_settings = StepSettings(**self.step_settings)

    @property
    def checkpoint(self) -> str:
        """The run's model: its best checkpoint, else its last.

        Raises:
            ValueError: the run wrote no checkpoint.
        """
        found = self.best_checkpoint or self.last_checkpoint
        if found is None:
            raise ValueError(f"the training run in {self.run_dir} wrote no checkpoint")
        return found


def finished_result(
    config: TrainingConfig, run_dir: str, checkpoint_uri: str, checkpoint: dict[str, Any]
) -> FitResult:
    """The result of a run that had already trained as far as asked, read from its files
    (nothing is trained or written)."""
    state = checkpoint.get("srgan", {})
    iteration = int(state.get("iteration", 0))
    trained_with = checkpoint.get("hyper_parameters", {}).get("config", {})
    fs = fsspec.core.url_to_fs(run_dir)[0]
    best = f"{run_dir.rstrip('/')}/checkpoints/{BEST}"
    preview = f"{run_dir.rstrip('/')}/previews/{preview_name(iteration)}"
    log.info(
        "run %s is finished: it trained to iteration %d (limits %s); nothing to do, nothing was "
        "written. Raise schedule.max_iterations (or trainer.max_epochs) to train on, or train "
        "into another run key.",
        run_dir,
        iteration,
        training_limits(config),
    )
    return FitResult(
        run_dir=run_dir,
        iteration=iteration,
        metrics=dict(state.get("val_metrics", {})),
        last_checkpoint=checkpoint_uri,
        best_checkpoint=best if fs.exists(fsspec.core.url_to_fs(best)[1]) else None,
        preview=preview if fs.exists(fsspec.core.url_to_fs(preview)[1]) else None,
        metric_history=[dict(row) for row in state.get("val_history", [])],
        resumed_from=checkpoint_uri,
        seconds=0.0,
        device="none (already finished)",
        precision=str(trained_with.get("trainer", {}).get("precision") or "unknown"),
        store_version=trained_with.get("data", {}).get("version"),
        already_finished=True,
    )
