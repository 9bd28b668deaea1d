"""Sentinel-2 data for s2-srgan: scene readers, tiling, the Zarr patch store, DataModule, samples.

The most used entry points are importable from the package (loaded on first use, so importing
``datasets.errors`` alone stays light)::

    from datasets import open_patch_store, tile_scene
    ds = open_patch_store(".s2sr/patches/sentinel2.zarr")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "open_scene": "datasets.scenes",
    "find_scenes": "datasets.scenes",
    "tile_scene": "datasets.tiling",
    "open_patch_store": "datasets.patch_store",
    "store_info": "datasets.patch_store",
    "store_version": "datasets.patch_store",
    "PatchDataModule": "datasets.datamodule",
    "PatchDataset": "datasets.patch_dataset",
    "Degradation": "datasets.degradation",
    "SplitPolicy": "datasets.split_policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'datasets' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
