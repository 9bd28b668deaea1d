"""Map-style dataset of (LR, HR) patch pairs read lazily from a patch store."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor
from torch.utils.data import Dataset

from datasets.errors import PatchStoreError
from datasets.normalise import get_normalisation, normalise
from datasets.patch_store import open_patch_store
from datasets.split_policy import SPLITS

SampleKey = int | tuple[int, int]
"""An index, or ``(index, epoch)`` as yielded by :class:`datasets.loader.ResumableDataLoader`."""


def augment_pair(lr: Tensor, hr: Tensor, rotations: int, flip: bool) -> tuple[Tensor, Tensor]:
    """Rotate by ``rotations`` × 90° and optionally flip left-right, identically for LR and HR.

    Args:
        lr: ``(C, h, w)`` tensor.
        hr: ``(C, H, W)`` tensor covering the same footprint.
        rotations: quarter turns, counter-clockwise.
        flip: mirror the columns after rotating.

    Returns:
        The transformed ``(lr, hr)``, contiguous.
    """
    out = []
    for x in (lr, hr):
        x = torch.rot90(x, rotations, dims=(-2, -1))
        out.append((x.flip(-1) if flip else x).contiguous())
    return out[0], out[1]


class PatchDataset(Dataset[tuple[Tensor, Tensor]]):
    """(LR, HR) float32 pairs of one split of a patch store, one patch read per item.

    The store is opened lazily: a dataset built from a URI drops its handle when pickled, and each
    DataLoader worker reopens the same version on first access (safe with ``num_workers > 0`` and
    object storage). Icechunk stores cannot be read in ``fork()``ed workers: give the DataLoader
    ``multiprocessing_context="forkserver"`` (as :class:`~datasets.datamodule.PatchDataModule`
    does); a forked worker raises :class:`~datasets.errors.PatchStoreError` instead of hanging.

    Args:
        store: store URI, or a dataset from :func:`~datasets.patch_store.open_patch_store`.
        split: ``"train"`` or ``"val"``.
        normalisation: name in :data:`~datasets.normalise.NORMALISATIONS`; ``zero_one`` maps
            both tensors with the LR patch's per-band range.
        augment: random flips and 90° rotations, the same for LR and HR (train split only).
            With ``(index, epoch)`` keys they are drawn from ``(seed, epoch, index)``, so a
            resumed epoch repeats them; with plain indices from torch's RNG.
        version: store version to read (``None``: latest, pinned at construction).
        storage_options: fsspec/s3fs options of the store.
        seed: seed of keyed augmentation.

    Raises:
        ValueError: unknown split or normalisation, or ``augment`` on the val split.
        PatchStoreError: the store is missing, empty, or has no such version; or (on access)
            an Icechunk store is read in a forked process.

    Example::

        ds = PatchDataset("patches.zarr", split="train", augment=True)
        lr, hr = ds[0]  # (4, 32, 32), (4, 128, 128) float32 in [0, 1]
    """

    def __init__(
        self,
        store: str | xr.Dataset,
        split: str = "train",
        normalisation: str = "normalise_10k",
        augment: bool = False,
        version: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        if augment and split != "train":
            raise ValueError("augment=True is for the train split only; validation stays as stored")
        get_normalisation(normalisation)
        self.split = split
        self.normalisation = normalisation
        self.augment = augment
        self.seed = seed
        self.storage_options = storage_options
        self._uri = store if isinstance(store, str) else None
        self._ds = None if isinstance(store, str) else store
        self._pid = os.getpid()
        self._unpickled = False
        self.version: str | None = version
        self.backend: str | None = None
        ds = self._dataset()
        self.version = ds.attrs.get("store_version", version)
        self.backend = ds.attrs.get("backend")
        self.bands = tuple(str(b) for b in ds["band"].values)
        self.scale = int(ds.attrs["scale"])
        self.indices = np.flatnonzero(np.asarray(ds["split"].values) == split)

    def _dataset(self) -> xr.Dataset:
        forked = self._pid != os.getpid() and not self._unpickled
        if forked and self.backend == "icechunk":
            # Icechunk's I/O runtime does not survive fork(): reading would hang forever.
            raise PatchStoreError(
                "an Icechunk patch store cannot be read in a fork()ed process; give the "
                "DataLoader multiprocessing_context='forkserver' or 'spawn' (PatchDataModule "
                "does), or use num_workers=0"
            )
        # A forked worker inherits the parent's handle, whose network clients are bound to the
        # parent's event loop; each process opens its own.
        if self._uri is not None and (self._ds is None or self._pid != os.getpid()):
            self._ds = open_patch_store(
                self._uri, version=self.version, storage_options=self.storage_options
            )
            self._pid = os.getpid()
        assert self._ds is not None
        return self._ds

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._uri is not None:
            state["_ds"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._unpickled = True

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: SampleKey) -> tuple[Tensor, Tensor]:
        """The pair at position ``index`` of the split.

        Returns:
            ``lr`` ``(C, P/scale, P/scale)`` and ``hr`` ``(C, P, P)``, float32, normalised.
        """
        index, epoch = key if isinstance(key, tuple) else (key, None)
        patch = int(self.indices[index])
        ds = self._dataset()
        # Variable indexing skips DataArray bookkeeping: a third of the read time per item.
        lr_raw = torch.from_numpy(ds.variables["lr"][patch].values.astype(np.float32))
        hr_raw = torch.from_numpy(ds.variables["hr"][patch].values.astype(np.float32))
        lr = normalise(lr_raw, self.normalisation, reference=lr_raw)
        hr = normalise(hr_raw, self.normalisation, reference=lr_raw)
        if not self.augment:
            return lr, hr
        if epoch is None:
            rotations, flip = int(torch.randint(4, ())), bool(torch.randint(2, ()))
        else:
            rng = np.random.default_rng((self.seed, epoch, index))
            rotations, flip = int(rng.integers(4)), bool(rng.integers(2))
        return augment_pair(lr, hr, rotations, flip)
