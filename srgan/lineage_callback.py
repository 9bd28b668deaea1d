"""The Lightning callback that writes a checkpoint's training-data lineage
(:mod:`srgan.lineage` reads it back)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from datasets.datamodule import PatchDataModule
from datasets.patch_store import store_info
from srgan.lineage import LINEAGE_KEY


class TrainingLineage(Callback):
    """Records the training data's lineage in every checkpoint the trainer saves.

    Args:
        run_dir: The run's folder.
    """

    def __init__(self, run_dir: str) -> None:
        self.record: dict[str, Any] = {"run_dir": run_dir}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if not isinstance(datamodule, PatchDataModule):
            return  # in-memory pairs: no store, no recorded degradation
        info = store_info(
            datamodule.store_uri, datamodule.storage_options, version=datamodule.version
        )
        self.record.update(
            store=datamodule.store_uri,
            store_version=datamodule.store_version or info.version,
            degradation=dict(info.degradation),
        )

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[LINEAGE_KEY] = dict(self.record)
