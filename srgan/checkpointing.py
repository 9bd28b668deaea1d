"""Checkpoints written per training iteration, atomically, with a fallback when one is corrupt.

Lightning's ``ModelCheckpoint(every_n_train_steps=...)`` counts ``global_step``, which advances
twice per adversarial batch; :class:`IterationCheckpoint` counts the module's own iterations.
Checkpoints load weights-only: a file holding pickled code or other objects is refused with the
offending global named (:func:`load_checkpoint`).
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import fsspec
from lightning.pytorch import Callback, LightningModule, Trainer

from datasets.lease import LeaseLostError
from datasets.storage_errors import is_s3, storage_errors
from srgan.checkpoint_io import CheckpointError, load_checkpoint, refused_global

__all__ = [
    "CheckpointError",
    "IterationCheckpoint",
    "find_resume_checkpoint",
    "load_checkpoint",
    "refused_global",
]

log = logging.getLogger(__name__)

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
BEST = "best.ckpt"
#: Temporary names of checkpoints being written: ``.last-<iteration>.tmp``.
TEMPORARY = re.compile(r"^\.last-\d+\.tmp$")


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


class IterationCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_iterations`` iterations, at the end, and on errors.

    Each save goes to a temporary name and is then renamed over ``last.ckpt``; the previous
    ``last.ckpt`` is kept as ``last-previous.ckpt``, so a crash while writing never leaves the run
    without a loadable checkpoint. A ``last.ckpt`` that does not load (damaged by an earlier
    crash) is never moved into the backup slot: it is replaced and the backup stays. Temporary
    files of a write interrupted by a crash are removed when the next fit starts. On an exception
    raised in the middle of a training step (weights possibly half-updated) nothing is saved: the
    last periodic checkpoint stays the resume point. The checkpoint written when training ends
    records the limits it ended under (:func:`finished_under`).

    Args:
        dirpath: local directory or fsspec URL (``s3://...``) for the checkpoints.
        every_n_iterations: interval in training iterations (batches).
    """

    def __init__(self, dirpath: str | Path, every_n_iterations: int) -> None:
        self.dirpath = str(dirpath)
        self.every_n_iterations = every_n_iterations
        self.last_saved_iteration: int | None = None
        #: the limits (``{"max_iterations", "max_epochs"}``) training ended under, once it did
        self.finished_under: dict[str, int | None] | None = None
        self.limits: dict[str, int | None] | None = None
        #: whether ``last.ckpt`` is known to load (None: not checked yet)
        self.last_loads: bool | None = None

    @property
    def last_path(self) -> str:
        """Where ``last.ckpt`` lives."""
        return _join(self.dirpath, LAST)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            remove_stale_temporaries(self.dirpath)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.finished_under = None  # a resumed run trains on: it is no longer finished

    def _save(self, trainer: Trainer, module: LightningModule, *, final: bool = False) -> None:
        iteration = int(getattr(module, "iteration", trainer.global_step))
        if iteration == self.last_saved_iteration and not final:
            return
        if final:
            self.finished_under = self.limits
        fs, root = fsspec.core.url_to_fs(self.dirpath)
        if not is_s3(self.dirpath):  # object stores have no folders (and s3fs would make a bucket)
            fs.makedirs(root, exist_ok=True)
        tmp = _join(self.dirpath, f".last-{iteration}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            self._publish(fs, root, fsspec.core.url_to_fs(tmp)[1])
        self.last_saved_iteration = iteration
        log.info("checkpoint at iteration %d: %s", iteration, self.last_path)

    def _publish(self, fs: Any, root: str, tmp: str) -> None:
        """Rename ``tmp`` over ``last.ckpt``, the old one becoming the backup if it loads."""
        last, previous = _join(root, LAST), _join(root, PREVIOUS)
        if fs.exists(last):
            if self.last_loads is None:
                self.last_loads = _loads(self.last_path)
            if self.last_loads:
                fs.mv(last, previous)
            else:
                log.warning(
                    "%s does not load; replacing it without making it the backup (%s stays)",
                    self.last_path,
                    _join(self.dirpath, PREVIOUS),
                )
        fs.mv(tmp, last)
        self.last_loads = True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if int(getattr(pl_module, "iteration", 0)) % self.every_n_iterations == 0:
            self._save(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer, pl_module, final=True)

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, LeaseLostError):  # another run holds the folder now
            return
        if getattr(pl_module, "in_step", False):
            log.warning(
                "error inside a training step; keeping %s as the resume point", self.last_path
            )
            return
        self._save(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {
            "dirpath": self.dirpath,
            "last_saved_iteration": self.last_saved_iteration,
            "finished_under": self.finished_under,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_saved_iteration = state_dict.get("last_saved_iteration")


def finished_under(checkpoint: dict[str, Any]) -> dict[str, int | None] | None:
    """The limits a run's training ended under, ``None`` if ``checkpoint`` was not written at
    the end of training (periodic, or on an error)."""
    state = checkpoint.get("callbacks", {}).get(IterationCheckpoint.__qualname__, {})
    return state.get("finished_under") if isinstance(state, dict) else None


def remove_stale_temporaries(dirpath: str) -> list[str]:
    """Delete the temporary files a crash left in a checkpoint folder; returns their paths.

    Runs when a fit starts, before anything else writes there (the run folder's lease keeps
    other writers out).
    """
    fs, root = fsspec.core.url_to_fs(dirpath)
    with storage_errors(dirpath):
        try:
            names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
        except FileNotFoundError:
            return []
        stale = [_join(root, name) for name in names if TEMPORARY.match(name)]
        for path in stale:
            fs.rm(path)
    for path in stale:
        log.warning("removed %s, left by a checkpoint write that was interrupted", path)
    return stale


def _loads(uri: str) -> bool:
    try:
        load_checkpoint(uri)
    except CheckpointError:
        return False
    return True


def find_resume_checkpoint(dirpath: str | Path) -> str | None:
    """Newest loadable checkpoint of a run: ``last.ckpt``, else ``last-previous.ckpt``.

    A damaged ``last.ckpt`` (e.g. truncated by a killed process) is skipped with a warning.
    Returns None when the run has no checkpoint yet.

    Raises:
        CheckpointError: as :func:`resume_point`.
    """
    found = resume_point(dirpath)
    return found[0] if found else None


def resume_point(dirpath: str | Path) -> tuple[str, dict[str, Any]] | None:
    """The newest loadable checkpoint of a run and its content, as :func:`find_resume_checkpoint`.

    Raises:
        CheckpointError: the run has checkpoint files but none of them loads. Starting again from
            iteration 0 would silently throw the run's progress away, so the files are named in
            the message and left as they are.
        StorageError: the folder is on S3 and cannot be used (access, bucket, endpoint).
    """
    fs, root = fsspec.core.url_to_fs(str(dirpath))
    unusable: list[str] = []
    for name in (LAST, PREVIOUS):
        uri = _join(str(dirpath), name)
        with storage_errors(uri):
            if not fs.exists(_join(root, name)):
                continue
        try:
            checkpoint = load_checkpoint(uri)
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", stacklevel=2)
            log.warning("skipping unusable checkpoint: %s", err)
            unusable.append(str(err))
            continue
        return uri, checkpoint
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
