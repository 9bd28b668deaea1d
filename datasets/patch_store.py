"""The Zarr patch store: reopen any committed version of a store of HR/LR patch pairs.

Two backends hold the same Zarr v3 layout (:mod:`datasets.store_layout`):

- ``icechunk`` (default): an Icechunk repository; each scene append is one commit, so a crash
  leaves nothing behind, and the snapshot id is the version.
- ``zarr``: plain Zarr v3 on a local path or any fsspec URL. An append writes the scene's patches
  past the committed end, then commits its manifest entry last; readers only see patches of
  committed scenes, and the version is a hash of the manifest (:mod:`datasets.store_version`).

Writing lives in :mod:`datasets.store_writer`; its public names are re-exported here.

Example::

    writer = PatchStoreWriter("patches.zarr", params)
    writer.append_scene("S2A_...", crs_wkt, batches)
    ds = open_patch_store("patches.zarr", version=store_version("patches.zarr"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.backends import BackendArray
from xarray.core import indexing

from datasets.store_backends import (
    DEFAULT_BACKEND,
    Backend,
    StorageOptions,
    detect_backend,
    read_snapshot,
)
from datasets.store_layout import PatchBatch, StoreParams
from datasets.store_writer import AppendResult, PatchStoreWriter, append_scene_patches

__all__ = [
    "DEFAULT_BACKEND",
    "AppendResult",
    "Backend",
    "PatchBatch",
    "PatchStoreWriter",
    "StoreInfo",
    "StoreParams",
    "append_scene_patches",
    "detect_backend",
    "open_patch_store",
    "store_info",
    "store_version",
]


@dataclass(frozen=True)
class StoreInfo:
    """Summary of a store at one version, read from its attrs only (no pixels)."""

    uri: str
    backend: Backend
    version: str
    bands: tuple[str, ...]
    scale: int
    patch_size: int
    stride: int
    degradation: dict[str, Any]
    n_patches: dict[str, int]
    scenes: tuple[str, ...]


def open_patch_store(
    uri: str, *, version: str | None = None, storage_options: StorageOptions = None
) -> xr.Dataset:
    """Open a patch store lazily, showing only committed scenes.

    Args:
        uri: local path or URL (``s3://bucket/prefix`` and other fsspec URLs).
        version: a version from :func:`store_version` or a training run; ``None`` = the latest.
        storage_options: fsspec/s3fs options (``endpoint_url``, ``key``, ``secret``, ...).

    Returns:
        Dataset with ``hr`` and ``lr`` (lazy, uint16) and the per-patch coordinates of
        :mod:`datasets.store_layout`; attrs hold the store parameters, ``scenes``, ``crs``
        (scene_id → WKT), ``store_version`` and ``backend``.

    Raises:
        PatchStoreError: no store at ``uri``, no committed scene, or an unknown ``version``.
    """
    snap = read_snapshot(uri, version, storage_options)
    group = zarr.open_group(snap.store, mode="r", zarr_format=3)
    attrs = {k: v for k, v in snap.attrs.items() if k != "versions"}
    attrs.update(snap.manifest.to_attrs(), store_version=snap.version, backend=snap.backend)
    return _lazy_dataset(group, snap.manifest.n_patches, attrs)


class _PrefixArray(BackendArray):
    """Lazy, read-only view of a Zarr array cut to its first ``n`` entries along ``patch``."""

    def __init__(self, array: zarr.Array, n_patches: int | None) -> None:
        self._array = array
        shape = tuple(array.shape)
        self.shape = shape if n_patches is None else (n_patches, *shape[1:])
        self.dtype = np.dtype(array.dtype)  # type: ignore[arg-type]

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple[int | slice, ...]) -> np.ndarray:
        # Bound open slices by the visible shape, never by the array's (longer) stored one.
        bounded = tuple(
            slice(*k.indices(size)) if isinstance(k, slice) else k
            for k, size in zip(key, self.shape, strict=True)
        )
        return np.asarray(self._array[bounded])


def _lazy_dataset(group: zarr.Group, n_patches: int, attrs: dict[str, Any]) -> xr.Dataset:
    """Build the dataset array by array, each cut to the committed patches.

    Going through ``xr.open_zarr`` would fail on a plain Zarr store that a crash left with
    arrays of different lengths (their tails are uncommitted); cutting first never does.
    """
    variables: dict[str, xr.Variable] = {}
    coord_names = {"band"}
    for name, array in group.arrays():
        dims = tuple(str(d) for d in array.metadata.dimension_names or ())  # type: ignore[union-attr]
        var_attrs = dict(array.attrs)
        coord_names.update(str(var_attrs.pop("coordinates", "")).split())
        lazy = _PrefixArray(array, n_patches if dims[:1] == ("patch",) else None)
        variables[name] = xr.Variable(dims, indexing.LazilyIndexedArray(lazy), var_attrs)
    coords = {k: v for k, v in variables.items() if k in coord_names}
    data = {k: v for k, v in variables.items() if k not in coord_names}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def store_info(
    uri: str, storage_options: StorageOptions = None, *, version: str | None = None
) -> StoreInfo:
    """Bands, scale, patch size, patches per split, scenes and version of a store.

    Raises:
        PatchStoreError: as :func:`open_patch_store`.
    """
    snap = read_snapshot(uri, version, storage_options)
    params = StoreParams.from_attrs(snap.attrs)
    scenes = snap.manifest.scenes
    return StoreInfo(
        uri=str(uri),
        backend=snap.backend,
        version=snap.version,
        bands=params.bands,
        scale=params.scale,
        patch_size=params.patch_size,
        stride=params.stride,
        degradation=params.degradation,
        n_patches={"train": sum(e.n_train for e in scenes), "val": sum(e.n_val for e in scenes)},
        scenes=tuple(e.scene_id for e in scenes),
    )


def store_version(uri: str, storage_options: StorageOptions = None) -> str:
    """Latest committed version of a store: record it to reopen exactly this data later.

    Raises:
        PatchStoreError: as :func:`open_patch_store`.
    """
    return read_snapshot(uri, None, storage_options).version
