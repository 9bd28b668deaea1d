"""The Zarr v3 layout of a patch store, shared by the plain Zarr and the Icechunk backends.

Arrays (dims in brackets):

- ``hr[patch, band, y, x]``: uint16 reflectance ×10000, one chunk per patch, Blosc-zstd.
- ``lr[patch, band, y_lr, x_lr]``: the same footprint at ``1 / scale`` the resolution
  (xarray needs distinct dim names for the smaller grid).
- coordinates along ``patch``: ``scene_id`` (str), ``split`` ("train" / "val"), ``row_off`` and
  ``col_off`` (int64 HR pixel offsets of the patch in its scene), ``transform[patch, affine]``
  (float64 coefficients ``a b c d e f`` of the patch's affine transform in its scene's CRS:
  ``Affine(*transform[i])``) and ``clear_fraction`` (float32 share of the patch's pixels that
  its scene's cloud mask left clear; NaN where no mask was applied, and for patches of stores
  written before it was recorded); along ``band``: ``band`` (str band names).

Root attrs: the :class:`StoreParams` (``bands``, ``scale``, ``patch_size``, ``stride``,
``degradation``, ``nodata_policy``), ``software_version``, and the scene manifest of
:mod:`datasets.store_version` (``scenes``, ``crs`` = scene_id → WKT).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.codecs import BloscCodec
from zarr.errors import UnstableSpecificationWarning

from datasets.errors import PatchStoreError, StoreMismatchError
from datasets.split_policy import SPLITS
from datasets.version import software_version

FORMAT_VERSION = 1
HR_DIMS = ("patch", "band", "y", "x")
LR_DIMS = ("patch", "band", "y_lr", "x_lr")
PATCH_COORDS = ("scene_id", "split", "row_off", "col_off", "transform", "clear_fraction")
TRANSFORM_ORDER = "a b c d e f (affine.Affine: x = a*col + b*row + c, y = d*col + e*row + f)"
# Coordinates are tiny; big chunks keep them to a few objects per store instead of one per patch.
_COORD_CHUNK = 4096
# Bit-shuffled zstd compresses smooth 16-bit reflectance about twice as well as plain zstd.
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
_PATCH_ARRAYS = ("hr", "lr", *PATCH_COORDS)


@dataclass(frozen=True)
class StoreParams:
    """What every scene of one store shares; an append with other values is refused.

    Attributes:
        bands: band names, in array order.
        scale: HR pixels per LR pixel along one axis.
        patch_size: HR patch edge in pixels (LR edge: ``patch_size // scale``).
        stride: HR pixels between neighbouring patch origins.
        degradation: ``Degradation.to_attrs()`` of the method that made ``lr``.
        nodata_policy: how missing and bright pixels filtered patches (JSON-ready).
    """

    bands: tuple[str, ...]
    scale: int
    patch_size: int
    stride: int
    degradation: dict[str, Any] = field(default_factory=dict)
    nodata_policy: dict[str, Any] = field(default_factory=dict)

    @property
    def lr_size(self) -> int:
        """LR patch edge in pixels."""
        return self.patch_size // self.scale

    def to_attrs(self) -> dict[str, Any]:
        """JSON-ready root attrs (lists, not tuples, so they compare equal after a round trip)."""
        attrs = asdict(self)
        attrs["bands"] = list(self.bands)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Any) -> StoreParams:
        """Parameters recorded in a store's root attrs."""
        return cls(
            bands=tuple(attrs["bands"]),
            scale=int(attrs["scale"]),
            patch_size=int(attrs["patch_size"]),
            stride=int(attrs["stride"]),
            degradation=dict(attrs.get("degradation", {})),
            nodata_policy=dict(attrs.get("nodata_policy", {})),
        )

    def check_matches(self, stored: StoreParams, uri: str) -> None:
        """Refuse to mix these parameters into a store written with ``stored``.

        Raises:
            StoreMismatchError: naming every differing field with both values.
        """
        mine, theirs = self.to_attrs(), stored.to_attrs()
        diffs = [
            f"{k}: store has {theirs[k]!r}, append asks {mine[k]!r}"
            for k in mine
            if mine[k] != theirs[k]
        ]
        if diffs:
            raise StoreMismatchError(
                f"patch store {uri} was written with other parameters ({'; '.join(diffs)}). "
                "Append with the store's parameters, or tile into a new store URI."
            )


@dataclass(frozen=True)
class PatchBatch:
    """Patches of one scene, ready to append.

    Attributes:
        hr: ``(n, band, P, P)`` uint16 reflectance ×10000.
        lr: ``(n, band, P / scale, P / scale)`` uint16, same footprint as ``hr``.
        row_off: ``(n,)`` int64 HR row of each patch's top-left pixel in the scene.
        col_off: ``(n,)`` int64 HR column of each patch's top-left pixel.
        split: ``(n,)`` str, ``"train"`` or ``"val"``.
        transform: ``(n, 6)`` float64 affine coefficients ``a b c d e f`` of each HR patch.
        clear_fraction: ``(n,)`` float32 share of each patch left clear by the cloud mask;
            ``None`` (stored as NaN) when no mask applied.
    """

    hr: np.ndarray
    lr: np.ndarray
    row_off: np.ndarray
    col_off: np.ndarray
    split: np.ndarray
    transform: np.ndarray
    clear_fraction: np.ndarray | None = None

    @property
    def clear(self) -> np.ndarray:
        """``clear_fraction``, or NaN for every patch when it is unknown."""
        if self.clear_fraction is None:
            return np.full(len(self), np.nan, dtype=np.float32)
        return self.clear_fraction.astype(np.float32)

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    def check(self, params: StoreParams) -> None:
        """Raise ``ValueError`` if shapes, dtypes or split names break the layout."""
        n, c, p, lr_p = len(self), len(params.bands), params.patch_size, params.lr_size
        expected = {
            "hr": ((n, c, p, p), self.hr),
            "lr": ((n, c, lr_p, lr_p), self.lr),
            "row_off": ((n,), self.row_off),
            "col_off": ((n,), self.col_off),
            "split": ((n,), self.split),
            "transform": ((n, 6), self.transform),
            "clear_fraction": ((n,), self.clear),
        }
        for name, (shape, array) in expected.items():
            if array.shape != shape:
                raise ValueError(f"PatchBatch.{name} has shape {array.shape}, expected {shape}")
        if self.hr.dtype != np.uint16 or self.lr.dtype != np.uint16:
            raise ValueError(f"hr/lr must be uint16, got {self.hr.dtype}/{self.lr.dtype}")
        unknown = set(np.unique(self.split).tolist()) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split names {sorted(unknown)}; use {SPLITS}")


def create_layout(store: Store, params: StoreParams) -> zarr.Group:
    """Create the empty arrays and root attrs of a new store (zero patches)."""
    attrs = {
        "s2srgan_store_format": FORMAT_VERSION,
        **params.to_attrs(),
        "software_version": software_version(),
        "units": "reflectance x10000",
        "transform_order": TRANSFORM_ORDER,
        "scenes": [],
        "crs": {},
    }
    group = zarr.create_group(store, zarr_format=3, attributes=attrs)
    c, p, lr_p = len(params.bands), params.patch_size, params.lr_size
    on_patch: dict[str, Any] = {
        "coordinates": " ".join(PATCH_COORDS),
        "units": "reflectance x10000",
    }
    # Zarr 3.1 warns that its string dtype has no final v3 spec yet; zarr and xarray read it fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        for name, edge, dims in (("hr", p, HR_DIMS), ("lr", lr_p, LR_DIMS)):
            group.create_array(
                name,
                shape=(0, c, edge, edge),
                chunks=(1, c, edge, edge),
                dtype="uint16",
                compressors=_COMPRESSOR,
                fill_value=0,
                dimension_names=dims,
                attributes=on_patch,
            )
        for name, dtype in (
            ("scene_id", str),
            ("split", str),
            ("row_off", "int64"),
            ("col_off", "int64"),
        ):
            group.create_array(
                name, shape=(0,), chunks=(_COORD_CHUNK,), dtype=dtype, dimension_names=("patch",)
            )
        _create_clear_fraction(group, 0)
        group.create_array(
            "transform",
            shape=(0, 6),
            chunks=(_COORD_CHUNK, 6),
            dtype="float64",
            dimension_names=("patch", "affine"),
            attributes={"order": TRANSFORM_ORDER},
        )
        band = group.create_array("band", shape=(c,), dtype=str, dimension_names=("band",))
        band[:] = np.array(params.bands, dtype=object)
    return group


def _create_clear_fraction(group: zarr.Group, n_patches: int) -> None:
    array = group.create_array(
        "clear_fraction",
        shape=(n_patches,),
        chunks=(_COORD_CHUNK,),
        dtype="float32",
        fill_value=np.nan,
        dimension_names=("patch",),
    )
    if n_patches:
        array[:] = np.nan


def upgrade_layout(group: zarr.Group) -> None:
    """Add what stores of earlier releases lack (``clear_fraction``, NaN for their patches)."""
    if "clear_fraction" not in group:
        hr = group["hr"]
        assert isinstance(hr, zarr.Array)
        _create_clear_fraction(group, hr.shape[0])


def open_layout(store: Store, uri: str, *, mode: str = "r") -> zarr.Group | None:
    """The store's root group, or ``None`` if the store holds no patch store yet.

    Raises:
        PatchStoreError: the root exists but is not a patch store written by s2-srgan.
    """
    try:
        group = zarr.open_group(store, mode=mode, zarr_format=3)  # type: ignore[arg-type]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    if "s2srgan_store_format" not in group.attrs:
        raise PatchStoreError(
            f"{uri} is a Zarr group but not an s2-srgan patch store (no 's2srgan_store_format' "
            "attr); choose another store URI"
        )
    return group


def resize_patches(group: zarr.Group, n_patches: int) -> None:
    """Set the ``patch`` length of every per-patch array (shrinking drops orphan chunks)."""
    for name in _PATCH_ARRAYS:
        array = group[name]
        assert isinstance(array, zarr.Array)
        array.resize((n_patches, *array.shape[1:]))


def write_pixels(group: zarr.Group, start: int, batch: PatchBatch) -> int:
    """Grow the store and write ``batch``'s ``hr`` and ``lr`` at ``start``; returns the new end."""
    end = start + len(batch)
    for name, data in (("hr", batch.hr), ("lr", batch.lr)):
        array = group[name]
        assert isinstance(array, zarr.Array)
        array.resize((end, *array.shape[1:]))
        array[start:end] = data
    return end


def write_coords(
    group: zarr.Group,
    start: int,
    scene_id: str,
    *,
    split: np.ndarray,
    row_off: np.ndarray,
    col_off: np.ndarray,
    transform: np.ndarray,
    clear_fraction: np.ndarray,
) -> None:
    """Write the per-patch coordinates of one scene's ``len(split)`` patches from ``start``."""
    n = len(split)
    end = start + n
    columns: dict[str, np.ndarray] = {
        "scene_id": np.full(n, scene_id, dtype=object),
        "split": split.astype(object),
        "row_off": row_off.astype(np.int64),
        "col_off": col_off.astype(np.int64),
        "transform": transform.astype(np.float64),
        "clear_fraction": clear_fraction.astype(np.float32),
    }
    for name, data in columns.items():
        array = group[name]
        assert isinstance(array, zarr.Array)
        array.resize((end, *array.shape[1:]))
        array[start:end] = data
