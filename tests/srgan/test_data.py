"""The training config's data section and the patch DataModule agree on their defaults."""

from __future__ import annotations

import inspect

from datasets.datamodule import PatchDataModule
from srgan.config import DataConfig

SHARED = ("batch_size", "val_batch_size", "num_workers", "normalisation", "version", "augment")


def test_data_config_defaults_are_the_datamodules() -> None:
    """A twin default drifts: ``num_workers`` was 2 in the config and 0 in the DataModule."""
    params = inspect.signature(PatchDataModule.__init__).parameters
    config = DataConfig()
    assert {name: getattr(config, name) for name in (*SHARED, "seed")} == {
        name: params[name].default for name in (*SHARED, "seed")
    }
