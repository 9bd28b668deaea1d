"""Build the patch DataModule a training config asks for, and check it fits the config."""

from __future__ import annotations

from datasets.datamodule import PatchDataModule
from datasets.errors import StoreMismatchError
from srgan.config import DataConfig, TrainingConfig


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


def pinned_datamodule(config: TrainingConfig) -> tuple[TrainingConfig, PatchDataModule]:
    """The datamodule of ``config.data`` and ``config`` with the store version it opened set
    as ``data.version``: the checkpoints, the result and the report then name the exact data
    the run trained on, whether it was started from the CLI or a flow.

    Raises:
        PatchStoreError, StoreMismatchError, StorageError: as :func:`datamodule_for`.
    """
    dm = datamodule_for(config.data)
    data = config.data.model_copy(update={"version": dm.store_version})
    return config.model_copy(update={"data": data}), dm
