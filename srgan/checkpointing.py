"""Checkpoints written per training iteration, atomically, with a fallback when one is corrupt.

Lightning's ``ModelCheckpoint(every_n_train_steps=...)`` counts ``global_step``, which advances
twice per adversarial batch; :class:`IterationCheckpoint` counts the module's own iterations.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import fsspec
from lightning.pytorch import Callback, LightningModule, Trainer

from srgan.checkpoint_io import CheckpointError, load_checkpoint

__all__ = ["CheckpointError", "IterationCheckpoint", "find_resume_checkpoint", "load_checkpoint"]

log = logging.getLogger(__name__)

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
BEST = "best.ckpt"


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


class IterationCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_iterations`` iterations, at the end, and on errors.

    Each save goes to a temporary name and is then renamed over ``last.ckpt``; the previous
    ``last.ckpt`` is kept as ``last-previous.ckpt``, so a crash while writing never leaves the run
    without a loadable checkpoint. On an exception raised in the middle of a training step (weights
    possibly half-updated) nothing is saved: the last periodic checkpoint stays the resume point.

    Args:
        dirpath: local directory or fsspec URL (``s3://...``) for the checkpoints.
        every_n_iterations: interval in training iterations (batches).
    """

    def __init__(self, dirpath: str | Path, every_n_iterations: int) -> None:
        self.dirpath = str(dirpath)
        self.every_n_iterations = every_n_iterations
        self.last_saved_iteration: int | None = None

    @property
    def last_path(self) -> str:
        """Where ``last.ckpt`` lives."""
        return _join(self.dirpath, LAST)

    def _save(self, trainer: Trainer, module: LightningModule) -> None:
        iteration = int(getattr(module, "iteration", trainer.global_step))
        if iteration == self.last_saved_iteration:
            return
        fs, root = fsspec.core.url_to_fs(self.dirpath)
        fs.makedirs(root, exist_ok=True)
        tmp = _join(self.dirpath, f".last-{iteration}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            last, previous = _join(root, LAST), _join(root, PREVIOUS)
            if fs.exists(last):
                fs.mv(last, previous)
            fs.mv(fsspec.core.url_to_fs(tmp)[1], last)
        self.last_saved_iteration = iteration
        log.info("checkpoint at iteration %d: %s", iteration, self.last_path)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if int(getattr(pl_module, "iteration", 0)) % self.every_n_iterations == 0:
            self._save(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer, pl_module)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if getattr(pl_module, "in_step", False):
            log.warning(
                "error inside a training step; keeping %s as the resume point", self.last_path
            )
            return
        self._save(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"dirpath": self.dirpath, "last_saved_iteration": self.last_saved_iteration}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_saved_iteration = state_dict.get("last_saved_iteration")


def find_resume_checkpoint(dirpath: str | Path) -> str | None:
    """Newest loadable checkpoint of a run: ``last.ckpt``, else ``last-previous.ckpt``.

    A damaged ``last.ckpt`` (e.g. truncated by a killed process) is skipped with a warning.
    Returns None when the run has no checkpoint yet.

    Raises:
        CheckpointError: the run has checkpoint files but none of them loads. Starting again from
            iteration 0 would silently throw the run's progress away, so the files are named in
            the message and left as they are.
    """
    fs, root = fsspec.core.url_to_fs(str(dirpath))
    unusable: list[str] = []
    for name in (LAST, PREVIOUS):
        uri = _join(str(dirpath), name)
        if not fs.exists(_join(root, name)):
            continue
        try:
            load_checkpoint(uri)
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", stacklevel=2)
            log.warning("skipping unusable checkpoint: %s", err)
            unusable.append(str(err))
            continue
        return uri
    if unusable:
        raise CheckpointError(
            f"run {dirpath} has checkpoints but none of them loads: {'; '.join(unusable)}. "
            "Not starting again from iteration 0; nothing was deleted. Restore a good copy of "
            f"{LAST}, or move the files aside (or train into a new run key / run directory) to "
            "start from scratch."
        )
    return None


def record_data_position(checkpoint: dict[str, Any], batches_done: int) -> None:
    """Set the resumable loader's position in a Lightning ``checkpoint`` to ``batches_done``.

    A resumable loader counts the batches it has handed out, one more than were trained when
    the checkpoint is written on an error before a step; the resume point is the trained count.
    """
    fit_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
    for state in fit_state.get("combined_loader") or ():
        if isinstance(state, dict) and "position" in state:
            state["position"] = batches_done
