"""Cut a Sentinel-2 scene into HR/LR patch pairs and append them to a patch store.

The scene is read one row of patch windows at a time (plus the few context rows the blur
needs), so memory stays bounded whatever the scene size: a 10980 × 10980 scene holds one
~13 MB strip of four uint16 bands at a time, and GDAL's block cache is capped at 256 MB
(tiling a full 10980² scene peaks at about 0.51 GiB RSS, the Python runtime included;
``bench/RESULTS.md``, *Tiling*).

Each patch is georeferenced by its window's affine transform in the scene's CRS; its LR twin
covers the same footprint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from datasets.degradation import UINT16_MAX, Degradation, check_grid_alignment
from datasets.errors import TilingError
from datasets.patch_store import store_version
from datasets.scenes import DEFAULT_BANDS, Scene, open_scene
from datasets.split_policy import SplitPolicy
from datasets.store_backends import Backend
from datasets.store_layout import PatchBatch, StoreParams
from datasets.store_writer import PatchStoreWriter

__all__ = ["SplitPolicy", "TileResult", "tile_scene"]

# Sentinel-2 L1C/L2A mark missing pixels with 0 even in files that declare no nodata value.
_S2_NODATA = 0
# GDAL's block cache defaults to 5 % of RAM (1.2 GB on 24 GB, 3 GB on 64 GB). Strips only need
# the current row of file tiles (~90 MB for four bands of 1024² JP2 tiles across 10980 px).
_GDAL_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TileResult:
    """What :func:`tile_scene` did with one scene.

    Attributes:
        scene_id: the scene's identifier in the store.
        patches_kept: patches appended (train + val); 0 if ``skipped_existing``.
        patches_val: of which in the validation split.
        dropped_nodata: patches with a missing-pixel fraction above ``max_nodata_fraction``.
        dropped_bright: patches with a bright-pixel fraction above ``max_bright_fraction``.
        dropped_straddling: patches across a split-block border (``drop_straddlers``).
        skipped_existing: the scene (same id, same source URI) was already in the store;
            nothing was read or written.
        version: the store version after this call.
    """

    scene_id: str
    patches_kept: int
    patches_val: int
    dropped_nodata: int
    dropped_bright: int
    dropped_straddling: int
    skipped_existing: bool
    version: str | None


@dataclass
class _Counts:
    val: int = 0
    nodata: int = 0
    bright: int = 0
    straddling: int = 0


@dataclass(frozen=True)
class _Filters:
    nodata: float
    max_nodata_fraction: float
    bright_threshold: int
    max_bright_fraction: float | None


def check_tiling_params(
    scale: int,
    patch_size: int,
    stride: int,
    max_nodata: float = 0.0,
    max_bright: float | None = None,
) -> None:
    """Refuse patch geometry and filter thresholds that no scene could be tiled with.

    Raises:
        TilingError: a non-positive size, ``patch_size``/``stride`` not multiples of ``scale``,
            or a fraction outside [0, 1].
    """
    if scale < 1 or patch_size < 1 or stride < 1:
        raise TilingError(
            f"scale ({scale}), patch_size ({patch_size}) and stride ({stride}) must be positive"
        )
    if patch_size % scale or stride % scale:
        raise TilingError(
            f"patch_size ({patch_size}) and stride ({stride}) must be multiples of scale "
            f"({scale}) so every LR patch falls on whole LR pixels; e.g. patch_size="
            f"{max(scale, patch_size // scale * scale)}"
        )
    for name, value in (("max_nodata_fraction", max_nodata), ("max_bright_fraction", max_bright)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise TilingError(f"{name} must lie in [0, 1], got {value}")


def _missing_mask(pixels: np.ndarray, nodata: float) -> np.ndarray:
    """``(h, w)`` True where any band is ``nodata`` or NaN."""
    missing = np.any(pixels == nodata, axis=0)
    if np.issubdtype(pixels.dtype, np.floating):
        missing |= np.any(np.isnan(pixels), axis=0)
    return missing


def _to_uint16(pixels: np.ndarray, scene: Scene) -> np.ndarray:
    """``pixels`` as the store's uint16, refusing values uint16 cannot hold rather than wrapping
    them (``astype`` would turn -1 into 65535 and 70000 into 4464)."""
    if pixels.dtype == np.uint16:
        return pixels
    low, high = int(pixels.min()), int(pixels.max())
    if low < 0 or high > UINT16_MAX:
        raise TilingError(
            f"scene {scene.uri} holds {pixels.dtype} pixels from {low} to {high} in patches to "
            f"keep, but the patch store holds uint16 reflectance ×10000 (0 to {UINT16_MAX}) "
            "and would wrap them. Convert the scene to uint16 ×10000 first (e.g. "
            "`gdal_translate -ot UInt16`, mapping its nodata to 0), or declare out-of-range "
            "fill values as the files' nodata so their patches are dropped."
        )
    return pixels.astype(np.uint16)


def _strip_batch(
    scene: Scene,
    lr_scene: Scene | None,
    row_off: int,
    degradation: Degradation,
    params: StoreParams,
    split: SplitPolicy,
    filters: _Filters,
    counts: _Counts,
) -> PatchBatch | None:
    """The kept patches of the row of windows at ``row_off``, or ``None`` if none is kept."""
    p, scale = params.patch_size, params.scale
    cols = range(0, scene.width - p + 1, params.stride)
    halo = degradation.halo(scale, params.bands)
    top, bottom = min(halo, row_off), min(halo, scene.height - row_off - p)
    strip = scene.read(Window(0, row_off - top, scene.width, p + top + bottom))
    core = strip[:, top : top + p]
    missing = _missing_mask(core, filters.nodata)
    bright = np.all(core > filters.bright_threshold, axis=0)
    kept: list[tuple[int, str]] = []
    for col_off in cols:
        window = (slice(None), slice(col_off, col_off + p))
        if missing[window].mean() > filters.max_nodata_fraction:
            counts.nodata += 1
            continue
        max_bright = filters.max_bright_fraction
        if max_bright is not None and bright[window].mean() > max_bright:
            counts.bright += 1
            continue
        side = split.patch_split(scene.scene_id, row_off, col_off, p)
        if side is None:
            counts.straddling += 1
            continue
        kept.append((col_off, side))
    if not kept:
        return None
    if lr_scene is not None:
        lr_strip = lr_scene.read(Window(0, row_off // scale, lr_scene.width, p // scale))
    else:
        used = cols[-1] + p
        right = min(halo, scene.width - used)
        lr_strip = degradation.degrade(
            strip[:, :, : used + right], scale, bands=params.bands, halo=(top, bottom, 0, right)
        )
    offsets = np.array([c for c, _ in kept], dtype=np.int64)
    sides = np.array([s for _, s in kept])
    counts.val += int(np.count_nonzero(sides == "val"))
    lr_p = p // scale
    return PatchBatch(
        hr=_to_uint16(np.stack([core[:, :, c : c + p] for c in offsets]), scene),
        lr=_to_uint16(
            np.stack([lr_strip[:, :, c // scale : c // scale + lr_p] for c in offsets]),
            lr_scene or scene,
        ),
        row_off=np.full(len(kept), row_off, dtype=np.int64),
        col_off=offsets,
        split=sides,
        transform=np.array(
            [tuple(scene.transform @ Affine.translation(c, row_off))[:6] for c in offsets]
        ),
    )


def tile_scene(
    scene_uri: str,
    store_uri: str,
    *,
    bands: Sequence[str] = DEFAULT_BANDS,
    scale: int = 4,
    patch_size: int = 128,
    stride: int | None = None,
    degradation: Degradation | None = None,
    split: SplitPolicy | None = None,
    max_nodata_fraction: float = 0.0,
    max_bright_fraction: float | None = None,
    bright_threshold: int = 3000,
    storage_options: Mapping[str, Any] | None = None,
    scene_storage_options: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    resampling: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TileResult:
    """Cut one scene into HR/LR patches and append them to a patch store as one commit.

    Patch windows start every ``stride`` HR pixels from the top-left corner; windows that would
    cross the right or bottom edge are not cut. Missing pixels (the scene's nodata value, or 0
    for Sentinel-2 files that declare none, and NaN) in any band count against
    ``max_nodata_fraction``; a pixel is bright when it exceeds ``bright_threshold`` in every
    band (a cloud proxy). The blur of ``gaussian_area`` sees the scene around each patch, not
    just the patch, so LR patches have no padding artefacts inside the scene.

    The scene is recorded in the store under its id (:attr:`Scene.scene_id`) with the URI it
    was read from: tiling the same URI again is a no-op, while another scene with the same id is
    refused, never dropped. Pixels are stored as uint16; scenes of another integer dtype (int16,
    int32, uint8...) are accepted as long as every kept patch fits 0 to 65535.

    Args:
        scene_uri: scene folder, ``.SAFE`` product or multi-band raster (local or ``s3://``).
        store_uri: patch store (local path or URL); created on first use.
        bands: bands to cut, in store order.
        scale: HR pixels per LR pixel along one axis.
        patch_size: HR patch edge in pixels; a multiple of ``scale``.
        stride: HR pixels between patch origins (default ``patch_size``); a multiple of ``scale``.
        degradation: how LR patches are made (default ``Degradation()``).
        split: train/val assignment (default ``SplitPolicy()``).
        max_nodata_fraction: drop patches with a larger fraction of missing pixels.
        max_bright_fraction: drop patches with a larger fraction of bright pixels (``None``: off).
        bright_threshold: reflectance ×10000 above which a pixel is bright in a band.
        storage_options: fsspec/s3fs options of the store (and of the scene, by default).
        scene_storage_options: options of the scene if they differ from the store's.
        backend: backend of a new store (see :mod:`datasets.patch_store`).
        resampling: resample bands of coarser native resolution onto the finest band's grid
            with this method (e.g. ``"bilinear"``); without it such band sets are refused. It
            is recorded in the store's degradation attrs.
        progress: called with (rows of windows done, rows in total) after each row.

    Returns:
        Counts of kept and dropped patches and the store version.

    Raises:
        TilingError: bad parameters, a scene smaller than one patch, an LR grid that does not
            align (``real``), pixel values uint16 cannot hold, or no patch kept (nothing is
            committed in all these cases).
        StoreMismatchError: the store holds patches cut with other parameters.
        SceneIdConflictError: the store holds a scene with this id read from another URI.
        SceneReadError: the scene cannot be read (:class:`~datasets.errors.SceneFetchError`
            when fetching it failed; run again).
    """
    stride = patch_size if stride is None else stride
    degradation = degradation or Degradation()
    split = split or SplitPolicy()
    check_tiling_params(scale, patch_size, stride, max_nodata_fraction, max_bright_fraction)
    bands = tuple(bands)
    params = StoreParams(
        bands=bands,
        scale=scale,
        patch_size=patch_size,
        stride=stride,
        degradation=degradation.to_attrs(scale, bands)
        | ({"hr_resampling": resampling} if resampling else {}),
        nodata_policy={
            "missing": "scene nodata value (0 if undeclared) or NaN in any band",
            "max_nodata_fraction": max_nodata_fraction,
            "bright": f"> {bright_threshold} (reflectance x10000) in every band",
            "max_bright_fraction": max_bright_fraction,
        },
    )
    writer = PatchStoreWriter(store_uri, params, storage_options=storage_options, backend=backend)
    scene_options = storage_options if scene_storage_options is None else scene_storage_options
    with ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES))
        scene = stack.enter_context(
            open_scene(scene_uri, bands, resampling=resampling, storage_options=scene_options)
        )
        if writer.has_scene(scene.scene_id, scene.uri):
            version = store_version(store_uri, storage_options)
            return TileResult(scene.scene_id, 0, 0, 0, 0, 0, True, version)
        if scene.width < patch_size or scene.height < patch_size:
            raise TilingError(
                f"scene {scene.scene_id} is {scene.width}×{scene.height} px, smaller than one "
                f"{patch_size}×{patch_size} patch; use a smaller patch_size"
            )
        lr_scene = None
        if degradation.kind == "real":
            resolution = degradation.lr_resolution or scene.resolution * scale
            lr_scene = stack.enter_context(
                open_scene(
                    scene_uri,
                    bands,
                    resolution=resolution,
                    resampling=resampling,
                    storage_options=scene_options,
                )
            )
            check_grid_alignment(scene.transform, lr_scene.transform, scale)
        filters = _Filters(
            nodata=_S2_NODATA if scene.nodata is None else scene.nodata,
            max_nodata_fraction=max_nodata_fraction,
            bright_threshold=bright_threshold,
            max_bright_fraction=max_bright_fraction,
        )
        counts = _Counts()
        rows = range(0, scene.height - patch_size + 1, stride)

        def batches() -> Iterator[PatchBatch]:
            for done, row_off in enumerate(rows, start=1):
                batch = _strip_batch(
                    scene, lr_scene, row_off, degradation, params, split, filters, counts
                )
                if batch is not None:
                    yield batch
                if progress is not None:
                    progress(done, len(rows))

        result = writer.append_scene(
            scene.scene_id, scene.crs.to_wkt(), batches(), source=scene.uri
        )
    if result.skipped_existing:
        return TileResult(result.scene_id, 0, 0, 0, 0, 0, True, result.version)
    if result.n_patches == 0:
        raise TilingError(
            f"no patch of scene {scene.scene_id} was kept ({counts.nodata} dropped for missing "
            f"pixels above max_nodata_fraction={max_nodata_fraction}, {counts.bright} bright, "
            f"{counts.straddling} straddling split blocks); nothing was written. Check the scene "
            "or relax the filters."
        )
    return TileResult(
        scene_id=result.scene_id,
        patches_kept=result.n_patches,
        patches_val=counts.val,
        dropped_nodata=counts.nodata,
        dropped_bright=counts.bright,
        dropped_straddling=counts.straddling,
        skipped_existing=False,
        version=result.version,
    )
