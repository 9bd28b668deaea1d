"""LightningDataModule over one version of a patch store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from datasets.errors import PatchStoreError
from datasets.loader import ResumableDataLoader
from datasets.patch_dataset import PatchDataset
from datasets.patch_store import store_info


class EmptySplitError(PatchStoreError):
    """A split that training needs holds no patch; the message says how to re-tile."""

    def __init__(self, store: str, split: str, scenes: tuple[str, ...]) -> None:
        if len(scenes) > 1:
            fix = (
                f"re-tile it into a new store with split.mode=scene (it holds {len(scenes)} "
                "scenes) or a smaller split.block_size, e.g. 256"
            )
        else:
            fix = (
                "re-tile it into a new store with a smaller split.block_size (e.g. 256; it "
                "holds one scene, so split.mode=scene cannot fill both splits), or tile more "
                "scenes into it"
            )
        super().__init__(f"the {split!r} split of patch store {store} is empty: {fix}.")


class PatchDataModule(LightningDataModule):
    """Train and val loaders of (LR, HR) float32 pairs from a patch store.

    After :meth:`setup`, :attr:`bands`, :attr:`scale` and :attr:`store_version` describe the data
    actually read, for the training code to check against its config and record; every worker
    reads that same version even if scenes are appended meanwhile. The train loader shuffles
    deterministically from ``seed`` and can be resumed mid-epoch
    (:class:`~datasets.loader.ResumableDataLoader`); the val loader keeps store order. Workers
    of an Icechunk store start by ``forkserver`` (Icechunk does not survive ``fork()``), so the
    script that trains needs the ``if __name__ == "__main__":`` guard when ``num_workers > 0``.

    Args:
        store_uri: patch store URI (local path or URL).
        batch_size: pairs per train batch.
        val_batch_size: pairs per validation batch (``None``: ``batch_size``); validation keeps
            no gradients, so it can usually take larger batches.
        num_workers: DataLoader worker processes (kept alive across epochs when > 0).
        normalisation: name in :data:`~datasets.normalise.NORMALISATIONS`.
        version: store version to read (``None``: the latest at :meth:`setup`).
        storage_options: fsspec/s3fs options of the store.
        augment: flips and 90° rotations on the train split.
        pin_memory: pin batches in page-locked memory (``None``: when CUDA is available).
        seed: shuffling and augmentation seed.

    Example::

        dm = PatchDataModule("patches.zarr", batch_size=16, num_workers=4)
        dm.setup("fit")
        assert dm.bands == ("B02", "B03", "B04", "B08") and dm.scale == 4
        run_record["store_version"] = dm.store_version
    """

    def __init__(
        self,
        store_uri: str,
        batch_size: int = 16,
        num_workers: int = 0,
        val_batch_size: int | None = None,
        normalisation: str = "normalise_10k",
        version: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        augment: bool = True,
        pin_memory: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.store_uri = str(store_uri)
        self.batch_size = batch_size
        self.val_batch_size = batch_size if val_batch_size is None else val_batch_size
        self.num_workers = num_workers
        self.normalisation = normalisation
        self.version = version
        self.storage_options = storage_options
        self.augment = augment
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.bands: tuple[str, ...] = ()
        self.scale: int = 0
        self.store_version: str | None = None
        self._scenes: tuple[str, ...] = ()
        self.train_set: PatchDataset | None = None
        self.val_set: PatchDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Pin the store version and build the split datasets.

        Raises:
            PatchStoreError: the store is missing or empty, or a split needed by ``stage``
                (``fit``: both; ``validate``: val) holds no patch.
        """
        if self.train_set is None:
            info = store_info(self.store_uri, self.storage_options, version=self.version)
            self.bands, self.scale, self.store_version = info.bands, info.scale, info.version
            self._scenes = info.scenes
            self.train_set = self._dataset("train", augment=self.augment)
            self.val_set = self._dataset("val", augment=False)
        needed = {"fit": ("train", "val"), "validate": ("val",)}.get(stage or "fit", ())
        for split in needed:
            if len(self._split(split)) == 0:
                raise EmptySplitError(self.store_uri, split, self._scenes)

    def _dataset(self, split: str, *, augment: bool) -> PatchDataset:
        return PatchDataset(
            self.store_uri,
            split,
            normalisation=self.normalisation,
            augment=augment,
            version=self.store_version,
            storage_options=self.storage_options,
            seed=self.seed,
        )

    def _split(self, split: str) -> PatchDataset:
        dataset = self.train_set if split == "train" else self.val_set
        if dataset is None:
            raise RuntimeError("call setup() before asking for a DataLoader")
        return dataset

    def _loader_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "pin_memory": self.pin_memory,
        }
        if self.num_workers > 0 and self._split("train").backend == "icechunk":
            # Icechunk cannot be used across fork(); forkserver workers start clean.
            options["multiprocessing_context"] = "forkserver"
        return options

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled train batches ``(lr (B, C, h, w), hr (B, C, H, W))``, float32."""
        dataset = self._split("train")
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            seed=self.seed,
            # A short last batch skews batch statistics (BatchNorm in discriminators); drop it
            # unless it is the only batch.
            drop_last=len(dataset) > self.batch_size,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        """Val batches in store order (no augmentation)."""
        return DataLoader(
            self._split("val"),
            batch_size=self.val_batch_size,
            shuffle=False,
            **self._loader_options(),
        )
