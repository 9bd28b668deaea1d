"""Evaluate checkpoints on one validation set (same store, same version, same patches)."""

from __future__ import annotations

from prefect import task

from srgan.config import DataConfig
from srgan.data import datamodule_for
from srgan.evaluate import evaluate_checkpoint


@task(name="evaluate-checkpoints")
def evaluate_checkpoints(
    checkpoints: dict[str, str], data: DataConfig
) -> dict[str, dict[str, float]]:
    """Metrics of each named checkpoint on the validation split of ``data`` (pinned version)."""
    return {
        name: evaluate_checkpoint(uri, datamodule_for(data, stage="validate"))
        for name, uri in checkpoints.items()
    }
