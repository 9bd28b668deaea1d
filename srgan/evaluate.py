"""Evaluate a checkpoint's EMA generator on a validation set (for champion/challenger decisions)."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, Trainer

from srgan.checkpointing import load_checkpoint
from srgan.module import SRGANModule
from srgan.train import default_precision


def load_module(checkpoint_uri: str) -> SRGANModule:
    """An :class:`SRGANModule` with a checkpoint's config and weights (EMA included), weights-only.

    Raises:
        srgan.checkpointing.CheckpointError: missing or damaged checkpoint.
    """
    checkpoint = load_checkpoint(checkpoint_uri)
    module = SRGANModule(checkpoint["hyper_parameters"]["config"])
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    return module


def evaluate_checkpoint(checkpoint_uri: str, datamodule: LightningDataModule) -> dict[str, float]:
    """Validation metrics (``val_metrics/*`` with bicubic baselines and gains) of a checkpoint."""
    module = load_module(checkpoint_uri)
    trainer = Trainer(
        accelerator="auto",
        devices=1,
        precision=default_precision(),  # type: ignore[arg-type]
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.validate(module, datamodule=datamodule, verbose=False)
    return dict(module.last_val_metrics)
