"""Super-resolve a whole Sentinel-2 scene into a georeferenced COG at the HR grid.

The glue between the scene readers, the tiled generator and the COG writer: the scene is read
one row of tiles at a time, normalised per tile exactly as in training, super-resolved,
denormalised, blended, converted to uint16 reflectance ×10000 (or float32 reflectance) and
written strip by strip. Memory is bounded by one row of tiles at the HR width, whatever the
scene height (about ``bands × tile_size·scale × width·scale × 4`` bytes for the blend buffer).

Example::

    result = super_resolve_scene("S2A_MSIL1C_….SAFE", "best.ckpt", "s3://bucket/sr.tif")
    result.output, result.megapixels_per_second
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from affine import Affine
from torch import Tensor

from datasets.cog_writer import CogWriter, Compression, RasterProfile
from datasets.errors import InferenceError, SceneReadError
from datasets.normalise import get_normalisation
from datasets.output_location import check_output
from datasets.quicklook import Quicklook
from datasets.scenes import Scene, open_scene
from datasets.scenes.bands import check_bands
from datasets.version import DISTRIBUTION, software_version
from srgan.devices import device_name
from srgan.inference import InferenceModel, Precision, load_inference_model
from srgan.inference_tuning import tiling_for
from srgan.sr_pixels import OutputDType, StripSink, output_nodata
from srgan.tiled import Predict, TiledSuperResolver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuperResolveResult:
    """What :func:`super_resolve_scene` produced; all fields are JSON-able.

    Attributes:
        output: The COG's path or ``s3://`` URI.
        scene: The input scene URI; ``scene_id`` its identifier.
        checkpoint: The checkpoint used; ``weights`` ``"ema"`` or ``"generator"``.
        bands: Band names, in the output's band order.
        scale: Upscaling factor.
        lr_size: Input ``(width, height)`` in pixels; ``sr_size`` the output's.
        crs: Output CRS (that of the scene) as WKT or ``EPSG:…``.
        device: Where the generator ran.
        tiles: Number of tiles the generator processed.
        seconds: Wall time per stage (``read``, ``model``, ``blend``, ``write``, ``cog``,
            ``total``); ``model`` is the generator alone, the rest is the tiling overhead.
        megapixels_per_second: Output (SR) megapixels per second of ``total``.
        peak_rss_mb: Peak resident memory of this process so far (MiB).
        quicklook: PNG of an LR | SR crop at the scene centre, when one was asked for.
    """

    output: str
    scene: str
    scene_id: str
    checkpoint: str
    weights: str
    bands: list[str]
    scale: int
    lr_size: tuple[int, int]
    sr_size: tuple[int, int]
    crs: str
    device: str
    tiles: int
    seconds: dict[str, float]
    megapixels_per_second: float
    peak_rss_mb: float
    quicklook: str | None

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict."""
        return asdict(self)


def scene_predictor(model: InferenceModel) -> Predict:
    """Tile predictor in reflectance ×10000: normalise → generator → denormalise.

    Each tile is its own normalisation reference (``zero_one`` takes its per-band range from
    the LR tile), as each LR patch was in training.

    Args:
        model: The loaded generator.

    Returns:
        A function mapping ``(B, C, t, t)`` float32 reflectance ×10000 to
        ``(B, C, t·scale, t·scale)`` float32 reflectance ×10000.
    """
    norm = get_normalisation(model.normalisation)

    def predict(raw: Tensor) -> Tensor:
        raw = raw.to(model.device)
        return norm.inverse(model.predict(norm.forward(raw, raw)), raw)

    return predict


def _check_fit(model: InferenceModel, bands: Sequence[str] | None, scale: int | None) -> None:
    if bands is not None and tuple(check_bands(bands)) != model.bands:
        raise InferenceError(
            f"bands {list(bands)} were asked for, but checkpoint {model.checkpoint} was trained "
            f"on {list(model.bands)} (in this order); leave bands unset to use the checkpoint's, "
            "or use a checkpoint trained on the bands you want"
        )
    if scale is not None and scale != model.scale:
        raise InferenceError(
            f"scale ×{scale} was asked for, but checkpoint {model.checkpoint} was trained for "
            f"×{model.scale}; use a ×{scale} checkpoint or ask for ×{model.scale}"
        )


def _open(scene: str, model: InferenceModel, **options: Any) -> Scene:
    try:
        return open_scene(scene, model.bands, **options)
    except SceneReadError as err:
        if "missing" not in str(err):
            raise
        raise InferenceError(
            f"checkpoint {model.checkpoint} was trained on bands {list(model.bands)}, which "
            f"scene {scene} cannot provide: {err}"
        ) from err


def super_resolve_scene(
    scene: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | InferenceModel,
    out: str | os.PathLike[str],
    *,
    bands: Sequence[str] | None = None,
    scale: int | None = None,
    tile_size: int | None = None,
    overlap: int = 16,
    batch_size: int | None = None,
    use_ema: bool = True,
    device: str | None = None,
    precision: Precision = "auto",
    dtype: OutputDType = "uint16",
    compress: Compression = "deflate",
    compress_level: int | None = 1,
    overwrite: bool = False,
    resolution: float | None = None,
    resampling: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    work_dir: str | None = None,
    quicklook: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SuperResolveResult:
    """Super-resolve ``scene`` with a trained generator into a COG at ``out``.

    The COG has the scene's CRS and bounds, pixel size divided by the scale (same origin),
    one band per checkpoint band (descriptions = band names), 512 px tiles, overviews and
    ``compress`` compression. Input pixels that are nodata in any band (the scene's nodata
    value, or 0 when it declares none) are nodata in all bands of the output.

    Args:
        scene: Band folder, ``.SAFE`` product or multi-band raster; local or ``s3://``.
        checkpoint: Checkpoint path/URL, or an already loaded :class:`InferenceModel` (then
            ``use_ema`` and ``device`` are those it was loaded with).
        out: Output ``.tif`` path or ``s3://`` URI.
        bands: Expected bands; default (and only accepted value): the checkpoint's bands.
        scale: Expected factor; default (and only accepted value): the checkpoint's scale.
        tile_size: LR tile edge in pixels; default: measured by ``s2-srgan tune`` for this
            generator on this machine, else 128 (:mod:`srgan.inference_tuning`).
        overlap: LR overlap of neighbouring tiles (≤ ``tile_size // 2``).
        batch_size: Tiles per generator call; default: measured, else 8.
        use_ema: Use the checkpoint's EMA weights (default) rather than the raw generator.
        device: Torch device; default: a GPU when present, else the CPU.
        precision: ``float32``, ``bfloat16`` or ``auto`` (bfloat16 on a GPU, on the CPU the
            measured choice, else float32); ignored when ``checkpoint`` is already loaded.
        dtype: ``"uint16"`` reflectance ×10000 (nodata: the scene's, or 0) or ``"float32"``
            reflectance (nodata: ``nan``).
        compress: COG compression (``deflate``, ``zstd``, ``lzw``).
        compress_level: Its level (deflate 1-9, zstd 1-22, ignored for lzw); default 1, the
            fastest (``None``: GDAL's default, 6 for deflate and 9 for zstd).
        overwrite: Replace an existing output.
        resolution, resampling: Passed to :func:`~datasets.scenes.open_scene`.
        storage_options: s3fs options for ``s3://`` scenes and outputs.
        work_dir: Temporary folder for ``s3://`` outputs.
        quicklook: Where to save a PNG of an LR | SR crop at the scene centre.
        progress: Called with ``(lr_rows_done, lr_rows_total)`` after each strip.

    Returns:
        Paths, sizes and timings of the run.

    Raises:
        OutputError: ``out`` exists, is not writable, or writing/uploading failed.
        CheckpointError: The checkpoint is missing, damaged or unusable.
        InferenceError: The checkpoint's bands or scale do not fit the request or the scene.
        SceneReadError: The scene cannot be read (missing, corrupt, no CRS …).
        ValueError: ``tile_size``, ``overlap`` or ``batch_size`` out of range.

    Nothing is left at ``out`` (nor in temporary folders) when an error is raised.
    """
    started = time.perf_counter()
    out, scene = os.fspath(out), os.fspath(scene)
    check_output(out, overwrite=overwrite, storage_options=storage_options)
    if isinstance(checkpoint, InferenceModel):
        model = checkpoint
    else:
        model = load_inference_model(
            checkpoint, use_ema=use_ema, device=device, precision=precision
        )
    _check_fit(model, bands, scale)
    tile_size, batch_size = tiling_for(model, tile_size, batch_size, overlap)
    tiler = TiledSuperResolver(scene_predictor(model), model.scale, tile_size, overlap, batch_size)
    options = {"resolution": resolution, "resampling": resampling}
    with _open(scene, model, storage_options=storage_options, **options) as opened:
        s, width, height = model.scale, opened.width, opened.height
        nodata = output_nodata(opened.nodata, dtype)
        profile = RasterProfile(
            width=width * s,
            height=height * s,
            crs=opened.crs,
            transform=opened.transform @ Affine.scale(1 / s),
            band_names=list(model.bands),
            dtype=dtype,
            nodata=nodata,
            compress=compress,
            compress_level=compress_level,
            tags={
                "SR_SCENE": scene,
                "SR_CHECKPOINT": model.checkpoint,
                "SR_WEIGHTS": model.weights,
                "SR_SCALE": str(s),
                "SR_UNITS": "reflectance x 10000" if dtype == "uint16" else "reflectance",
                "SR_SOFTWARE": f"{DISTRIBUTION} {software_version()}",
            },
        )
        look = Quicklook(width, height, s, model.bands) if quicklook is not None else None
        threads = max(1, torch.get_num_threads())
        with CogWriter(
            out,
            profile,
            overwrite=overwrite,
            storage_options=storage_options,
            work_dir=work_dir,
            threads=threads,
        ) as writer:
            sink = StripSink(opened, s, writer, dtype, look)
            for strip in tiler.stream(sink.read, height, width):
                sink.write(strip)
                if progress is not None:
                    progress(strip.lr_row_off + strip.lr_rows, height)
            cog_started = time.perf_counter()
            published = writer.commit()
            cog_seconds = time.perf_counter() - cog_started
        look_path = look.save(quicklook) if look is not None and quicklook is not None else None
        crs = opened.crs.to_string()
        scene_id = opened.scene_id
    total = time.perf_counter() - started
    t = tiler.timings
    seconds = {
        "read": t.read,
        "model": t.model,
        "blend": t.blend,
        "write": sink.seconds,
        "cog": cog_seconds,
        "total": total,
    }
    result = SuperResolveResult(
        output=published,
        scene=scene,
        scene_id=scene_id,
        checkpoint=model.checkpoint,
        weights=model.weights,
        bands=list(model.bands),
        scale=s,
        lr_size=(width, height),
        sr_size=(width * s, height * s),
        crs=crs,
        device=device_name(model.device),
        tiles=t.tiles,
        seconds={k: round(v, 3) for k, v in seconds.items()},
        megapixels_per_second=round(width * height * s * s / 1e6 / total, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        quicklook=os.fspath(look_path) if look_path is not None else None,
    )
    log.info("super-resolved %s → %s in %.1f s", scene, published, total)
    return result
