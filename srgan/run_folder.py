"""One writer per run folder, and a finished run that stays as it is.

A training run writes ``<run_dir>/{checkpoints,logs,previews}``. Before it writes anything it
takes the folder's lease (``<run_dir>/lease.json``, see :mod:`datasets.lease`): a second run
with the same run folder is refused at once with the holder named, a retry of the same flow run
(the same ``owner``) continues, and the lease of a crashed run expires after
:data:`~datasets.lease.DEFAULT_TTL` seconds (at once when the crashed process ran on this host).
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from datasets.lease import Lease, this_process
from datasets.storage_errors import check_bucket
from srgan.config import TrainingConfig

#: Name of the lease file in a run folder.
LEASE_NAME = "lease.json"


def is_launching_process() -> bool:
    """Whether this process is the one that owns a run: not a DDP rank other than global 0.

    torchrun sets ``RANK``; Lightning's own DDP launcher starts the other ranks with
    ``LOCAL_RANK``/``NODE_RANK``. Those ranks write nothing but through rank 0.
    """
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def run_lease(run_dir: str, owner: str | None = None) -> Lease:
    """The (not yet taken) lease of ``run_dir`` for ``owner`` (default: this process).

    Raises:
        BucketMissingError, StorageAccessDenied, EndpointUnreachableError: ``run_dir`` is on S3
            and its bucket is missing or refused; nothing is created (a misspelt bucket never
            becomes a new one).
    """
    run_dir = str(run_dir).rstrip("/")
    check_bucket(run_dir)
    return Lease(
        f"{run_dir}/{LEASE_NAME}",
        owner or this_process(),
        what=f"run folder {run_dir}",
        advice=(
            "Wait for that run to finish, or train into another run key (run directory); a "
            "retry of the same flow run takes its own folder back at once."
        ),
    )


class LeaseGuard(Callback):
    """Stop training before the next step when the run folder's lease was lost."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.lease.check()


def training_limits(config: TrainingConfig) -> dict[str, int | None]:
    """The limits a run trains to: ``max_iterations`` and ``max_epochs``."""
    return {
        "max_iterations": config.schedule.max_iterations,
        "max_epochs": config.trainer.max_epochs,
    }


def is_finished(checkpoint: dict[str, Any], config: TrainingConfig, finished_under: Any) -> bool:
    """Whether the run of ``checkpoint`` already trained as far as ``config`` asks.

    Args:
        checkpoint: the run's newest checkpoint (as loaded).
        config: the config of the run started now.
        finished_under: the limits the run ended under (``None``: it did not end normally).
    """
    iteration = int(checkpoint.get("srgan", {}).get("iteration", 0))
    max_iterations = config.schedule.max_iterations
    if max_iterations is not None and iteration >= max_iterations:
        return True
    return finished_under is not None and finished_under == training_limits(config)
