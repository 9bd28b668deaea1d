"""Build the patch DataModule a training config asks for, and check it fits the config."""

from __future__ import annotations

from datasets.datamodule import PatchDataModule
from datasets.errors import StoreMismatchError
from srgan.config import DataConfig


def datamodule_for(data: DataConfig, stage: str = "fit") -> PatchDataModule:
    """A set-up :class:`PatchDataModule` for ``data``, its store version pinned.

    Raises:
        PatchStoreError: missing or empty store, or an empty split.
        StoreMismatchError: the store's bands or scale differ from the config's.
    """
    if not data.store:
        raise ValueError("no patch store given: set data.store (or the flow's `store` parameter)")
    dm = PatchDataModule(
        data.store,
        batch_size=data.batch_size,
        val_batch_size=data.val_batch_size,
        num_workers=data.num_workers,
        normalisation=data.normalisation,
        version=data.version,
        augment=data.augment,
        seed=data.seed,
    )
    dm.setup(stage)
    if tuple(dm.bands) != tuple(data.bands) or dm.scale != data.scale:
        raise StoreMismatchError(
            f"patch store {data.store} holds bands {list(dm.bands)} at scale ×{dm.scale}, but the "
            f"training config asks for bands {list(data.bands)} at ×{data.scale}; set "
            "data.bands/data.scale to match the store or tile a store with the config's bands"
        )
    return dm
