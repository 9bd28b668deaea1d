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

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from datasets.degradation import UINT16_MAX, check_grid_alignment
from datasets.errors import TilingError
from datasets.masks import CloudMask
from datasets.patch_store import store_version
from datasets.scenes import Scene, bounded_block_cache, open_scene
from datasets.split_policy import SplitPolicy
from datasets.store_backends import Backend
from datasets.store_layout import PatchBatch, StoreParams
from datasets.store_radiometry import check_store_radiometry
from datasets.store_writer import PatchStoreWriter
from datasets.tiling_params import TilingParams

__all__ = ["SplitPolicy", "TileResult", "TilingParams", "tile_scene"]

# Sentinel-2 L1C/L2A mark missing pixels with 0 even in files that declare no nodata value.
_S2_NODATA = 0


@dataclass(frozen=True)
class TileResult:
    """What :func:`tile_scene` did with one scene.

    Attributes:
        scene_id: the scene's identifier in the store.
        patches_kept: patches appended (train + val); 0 if ``skipped_existing``.
        patches_val: of which in the validation split.
        dropped_nodata: patches with a missing-pixel fraction above ``max_nodata_fraction``.
        dropped_masked: patches with a cloud-masked fraction above
            ``masks.max_masked_fraction``.
        dropped_bright: patches with a bright-pixel fraction above ``max_bright_fraction``.
        dropped_straddling: patches across a split-block border (``drop_straddlers``).
        clamped_pixels: band values of the kept HR patches at or below the radiometric offset
            (zero or negative reflectance), stored as 1.
        harmonisation: what was applied (:meth:`Harmonisation.to_record`).
        mask: the cloud mask used (source, classes, threshold).
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
    dropped_masked: int = 0
    clamped_pixels: int = 0
    harmonisation: dict[str, Any] | None = None
    mask: dict[str, Any] | None = None


@dataclass
class _Counts:
    val: int = 0
    nodata: int = 0
    masked: int = 0
    bright: int = 0
    straddling: int = 0
    clamped: int = 0


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
    mask: CloudMask,
    row_off: int,
    params: TilingParams,
    counts: _Counts,
) -> PatchBatch | None:
    """The kept patches of the row of windows at ``row_off``, or ``None`` if none is kept."""
    p, scale, degradation = params.patch_size, params.scale, params.degradation
    cols = range(0, scene.width - p + 1, params.step)
    halo = degradation.halo(scale, params.bands)
    top, bottom = min(halo, row_off), min(halo, scene.height - row_off - p)
    raw = scene.read_raw(Window(0, row_off - top, scene.width, p + top + bottom))
    strip = scene.harmonise(raw)
    core = strip[:, top : top + p]
    nodata = _S2_NODATA if scene.nodata is None else scene.nodata
    missing = _missing_mask(core, nodata)
    bright = np.all(core > params.bright_threshold, axis=0)
    masked = mask.read(Window(0, row_off, scene.width, p))
    kept: list[tuple[int, str, float]] = []
    for col_off in cols:
        window = (slice(None), slice(col_off, col_off + p))
        if missing[window].mean() > params.max_nodata_fraction:
            counts.nodata += 1
            continue
        masked_fraction = float(masked[window].mean())
        if masked_fraction > params.masks.max_masked_fraction:
            counts.masked += 1
            continue
        max_bright = params.max_bright_fraction
        if max_bright is not None and bright[window].mean() > max_bright:
            counts.bright += 1
            continue
        side = params.split.patch_split(scene.scene_id, row_off, col_off, p)
        if side is None:
            counts.straddling += 1
            continue
        kept.append((col_off, side, 1.0 - masked_fraction if mask.active else np.nan))
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
    offsets = np.array([c for c, _, _ in kept], dtype=np.int64)
    sides = np.array([s for _, s, _ in kept])
    counts.val += int(np.count_nonzero(sides == "val"))
    raw_core = raw[:, top : top + p]
    counts.clamped += sum(scene.count_clamped(raw_core[:, :, c : c + p]) for c in offsets)
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
        clear_fraction=np.array([f for _, _, f in kept], dtype=np.float32),
    )


def store_params(params: TilingParams) -> StoreParams:
    """What every scene of a store tiled with ``params`` shares (checked on every append)."""
    return StoreParams(
        bands=params.bands,
        scale=params.scale,
        patch_size=params.patch_size,
        stride=params.step,
        degradation=params.degradation.to_attrs(params.scale, params.bands)
        | ({"hr_resampling": params.resampling} if params.resampling else {}),
        nodata_policy={
            "missing": "scene nodata value (0 if undeclared) or NaN in any band",
            "max_nodata_fraction": params.max_nodata_fraction,
            "bright": f"> {params.bright_threshold} (reflectance x10000) in every band",
            "max_bright_fraction": params.max_bright_fraction,
        },
    )


def tile_scene(
    scene_uri: str,
    store_uri: str,
    params: TilingParams | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    scene_storage_options: Mapping[str, Any] | None = None,
    backend: Backend | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> TileResult:
    """Cut one scene into HR/LR patches and append them to a patch store as one commit.

    The scene is read harmonised (:mod:`datasets.harmonise`): whatever its processing baseline
    or source, stored values are reflectance ×10000, and what was applied is recorded with the
    scene in the store. Patch windows start every ``stride`` HR pixels from the top-left
    corner; windows that would cross the right or bottom edge are not cut. A patch is dropped,
    and counted by reason, when its fraction of missing pixels (the scene's nodata value, 0
    for Sentinel-2 files that declare none, or NaN, in any band) exceeds
    ``max_nodata_fraction``, its fraction of cloud-masked pixels (the product's SCL or
    MSK_CLASSI, or s2cloudless's mask of a Level-1C scene, see
    :class:`~datasets.tiling_params.MaskPolicy`) exceeds
    ``masks.max_masked_fraction``, or its fraction of bright pixels (above
    ``bright_threshold`` in every band, a cloud proxy) exceeds ``max_bright_fraction``. Kept
    patches record their clear (unmasked) fraction. The blur of ``gaussian_area`` sees the
    scene around each patch, so LR patches have no padding artefacts inside the scene.

    The scene is recorded in the store under its id (:attr:`Scene.scene_id`) with the URI it
    was read from: tiling the same URI again is a no-op, while another scene with the same id is
    refused, never dropped. Pixels are stored as uint16; scenes of another integer dtype (int16,
    int32...) are accepted as long as every kept patch fits 0 to 65535.

    Args:
        scene_uri: scene folder, ``.SAFE`` product (zipped or not), STAC Item, or multi-band
            raster (local, ``s3://`` or, for STAC Items, ``https://``).
        store_uri: patch store (local path or URL); created on first use.
        params: how to tile (built once by the caller); default ``TilingParams()``.
        storage_options: fsspec/s3fs options of the store (and of the scene, by default).
        scene_storage_options: options of the scene if they differ from the store's.
        backend: backend of a new store (see :mod:`datasets.patch_store`).
        progress: called with (rows of windows done, rows in total) after each row.
        **options: fields of :class:`TilingParams`, for calls without ``params``
            (``tile_scene(uri, store, patch_size=64)``); not combined with ``params``.

    Returns:
        Counts of kept and dropped patches, what was harmonised and masked, the store version.

    Raises:
        TilingError: bad parameters, a scene smaller than one patch, an LR grid that does not
            align (``real``), pixel values uint16 cannot hold, a store whose earlier scenes
            were stored without harmonisation although dated after 2022-01-25, or no patch kept
            (nothing is committed in all these cases).
        HarmonisationError: the scene's radiometry cannot be told (set ``harmonisation``).
        MaskError: the cloud mask asked for is missing or does not cover the scene, or
            s2cloudless cannot run on it (Level-2A, bands missing, package not installed).
        StoreMismatchError: the store holds patches cut with other parameters.
        SceneIdConflictError: the store holds a scene with this id read from another URI.
        SceneReadError: the scene cannot be read (:class:`~datasets.errors.SceneFetchError`
            when fetching it failed; run again).
    """
    if params is not None and options:
        raise TypeError(f"pass either params or options ({', '.join(options)}), not both")
    params = params if params is not None else TilingParams.build(**options)
    writer = PatchStoreWriter(
        store_uri, store_params(params), storage_options=storage_options, backend=backend
    )
    scene_options = storage_options if scene_storage_options is None else scene_storage_options
    opener = partial(
        open_scene,
        scene_uri,
        resampling=params.resampling,
        storage_options=scene_options,
        harmonisation=params.harmonisation,
        sign=params.sign,
    )
    with ExitStack() as stack:
        stack.enter_context(bounded_block_cache())
        scene = stack.enter_context(opener(params.bands))
        if writer.has_scene(scene.scene_id, scene.uri):
            version = store_version(store_uri, storage_options)
            return TileResult(scene.scene_id, 0, 0, 0, 0, 0, True, version)
        check_store_radiometry(writer.committed(), store_uri)
        p = params.patch_size
        if scene.width < p or scene.height < p:
            raise TilingError(
                f"scene {scene.scene_id} is {scene.width}×{scene.height} px, smaller than one "
                f"{p}×{p} patch; use a smaller patch_size"
            )
        lr_scene = None
        if params.degradation.kind == "real":
            resolution = params.degradation.lr_resolution or scene.resolution * params.scale
            lr_scene = stack.enter_context(opener(params.bands, resolution=resolution))
            check_grid_alignment(scene.transform, lr_scene.transform, params.scale)
        mask = stack.enter_context(CloudMask(scene, params.masks, opener))
        counts = _Counts()
        rows = range(0, scene.height - p + 1, params.step)

        def batches() -> Iterator[PatchBatch]:
            for done, row_off in enumerate(rows, start=1):
                batch = _strip_batch(scene, lr_scene, mask, row_off, params, counts)
                if batch is not None:
                    yield batch
                if progress is not None:
                    progress(done, len(rows))

        harmonisation = scene.harmonisation.to_record(scene.bands)
        mask_record = mask.record()

        def record() -> dict[str, Any]:
            # called after the last batch, so the counts are final
            return {
                "radiometry": {**harmonisation, "clamped_pixels": counts.clamped},
                "masks": {**mask_record, "dropped_patches": counts.masked},
            }

        result = writer.append_scene(
            scene.scene_id, scene.crs.to_wkt(), batches(), source=scene.uri, record=record
        )
    if result.skipped_existing:
        return TileResult(result.scene_id, 0, 0, 0, 0, 0, True, result.version)
    if result.n_patches == 0:
        raise TilingError(
            f"no patch of scene {scene.scene_id} was kept ({counts.nodata} dropped for missing "
            f"pixels above max_nodata_fraction={params.max_nodata_fraction}, {counts.masked} "
            f"cloud-masked ({mask.kind}) above masks.max_masked_fraction="
            f"{params.masks.max_masked_fraction}, {counts.bright} bright, {counts.straddling} "
            "straddling split blocks); nothing was written. Check the scene or relax the filters."
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
        dropped_masked=counts.masked,
        clamped_pixels=counts.clamped,
        harmonisation=harmonisation,
        mask=mask_record,
    )
