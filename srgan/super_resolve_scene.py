"""Super-resolve a whole Sentinel-2 scene into a georeferenced COG, with its QA and provenance.

The glue between the scene readers, the tiled generator, the QA and the COG writer: the scene is
read one row of tiles at a time, normalised per tile exactly as in training, super-resolved,
denormalised, blended, converted to uint16 reflectance ×10000 (or float32 reflectance), written
strip by strip and scored by the consistency QA in the same pass. Memory is bounded by one row of
tiles at the HR width, whatever the scene height: the strip in the output's pixel type
(``bands × tile_size·scale × width·scale × 2`` bytes for uint16; the blending's float32 is only
a batch of tiles wide, and the overlap's rows), the COG's row of 512 px tiles per level, and a
few copies of :data:`~srgan.sr_pixels.ROWS_PER_PASS` output rows (written and scored a slice of
a strip at a time).

Beside the COG go its QA sidecar (``<stem>_qa.tif``) and STAC Item (``<stem>.stac-item.json``);
all three are checked writable before the model runs and published together (evidence first).

Example::

    result = super_resolve_scene("S2A_MSIL1C_….SAFE", "best.ckpt", "s3://bucket/sr.tif")
    result.output, result.qa.verdict, result.seconds["qa"]
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

import torch
from affine import Affine
from torch import Tensor

from datasets.cog_writer import CogWriter, Compression, RasterProfile
from datasets.errors import InferenceError, SceneReadError
from datasets.harmonise import HarmonisationParam
from datasets.normalise import get_normalisation
from datasets.quicklook import Quicklook
from datasets.scenes import Scene, bounded_block_cache, open_scene
from datasets.scenes.bands import check_bands
from datasets.version import DISTRIBUTION, software_version
from srgan.devices import device_name
from srgan.heap import retained_heap
from srgan.inference import InferenceModel, Precision, load_inference_model
from srgan.inference_tuning import tiling_for
from srgan.output_bundle import BundlePublisher, check_bundle
from srgan.provenance import OutputGrid, OutputLineage, file_sha256, stac_item
from srgan.qa_gate import QAGate
from srgan.qa_scene import QAGeometry, SceneQA
from srgan.sr_pixels import OutputDType, StripSink, output_nodata
from srgan.sr_result import SuperResolveResult
from srgan.tiled import Predict, TiledSuperResolver, TileProgress

log = logging.getLogger(__name__)


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


def harmonisation_record(scene: Scene, reapply_offset: bool = False) -> dict[str, Any]:
    """The radiometric harmonisation applied to ``scene``'s pixels, as recorded for provenance:
    a JSON-ready dict (source of the decision, processing baseline, per-band offsets,
    quantification; see :mod:`datasets.harmonise`) and the output's convention."""
    output = "product digital numbers (offset re-applied)" if reapply_offset else "harmonised"
    return {**scene.harmonisation.to_record(scene.bands), "output": output}


def _units(dtype: OutputDType, reapply_offset: bool) -> str:
    if dtype == "float32":
        return "reflectance"
    return "product digital numbers" if reapply_offset else "reflectance x 10000"


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
    compress: Compression = "zstd",
    compress_level: int | None = 1,
    overwrite: bool = False,
    resolution: float | None = None,
    resampling: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    work_dir: str | None = None,
    quicklook: str | os.PathLike[str] | None = None,
    progress: TileProgress | None = None,
    qa: QAGate | None = None,
    harmonisation: HarmonisationParam | None = None,
    reapply_offset: bool = False,
) -> SuperResolveResult:
    """Super-resolve ``scene`` with a trained generator into a COG at ``out``, with QA and Item.

    The COG has the scene's CRS and bounds, pixel size divided by the scale (same origin),
    one band per checkpoint band (descriptions = band names), 512 px tiles, overviews and
    ``compress`` compression. Input pixels that are nodata in any band (the scene's nodata
    value, or 0 when it declares none) are nodata in all bands of the output. The QA
    (:mod:`srgan.qa_scene`) scores the output as it is written; its sidecar and the STAC Item
    (:mod:`srgan.provenance`) are written beside the COG. A QA verdict of ``failed`` is
    reported in the result, not raised: the caller decides (``qa.on_fail``).

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
        compress: COG compression: ``zstd`` (default, the fastest), ``deflate`` (for readers
            built without zstd) or ``lzw``.
        compress_level: Its level (deflate 1-9, zstd 1-22, ignored for lzw); default 1, the
            fastest (``None``: GDAL's default, 6 for deflate and 9 for zstd).
        overwrite: Replace an existing output (and its sidecar and Item).
        resolution, resampling: Passed to :func:`~datasets.scenes.open_scene`.
        storage_options: s3fs options for ``s3://`` scenes and outputs.
        work_dir: Temporary folder for ``s3://`` outputs.
        quicklook: Where to save a PNG of an LR | SR crop at the scene centre.
        progress: Called with ``(tiles_done, tiles_total)`` after every batch of tiles.
        qa: QA block size and gate thresholds (default: :class:`~srgan.qa_gate.QAGate`).
        harmonisation: The radiometry of a scene without product metadata or STAC Item (see
            :mod:`datasets.harmonise`); the input is always harmonised like the training data.
        reapply_offset: Write the output in the product's own digital-number convention
            (e.g. +1000 for baseline 04.00) instead of harmonised reflectance ×10000, for chains
            that expect it; uint16 only. The QA still compares harmonised values.

    Returns:
        Paths, sizes, timings and the QA summary of the run.

    Raises:
        OutputError: ``out``, its sidecar or its Item exists, is not writable, or
            writing/uploading failed (checked before the model runs).
        CheckpointError: The checkpoint is missing, damaged or unusable.
        InferenceError: The checkpoint's bands or scale do not fit the request or the scene.
        SceneReadError: The scene cannot be read (missing, corrupt, no CRS …).
        ValueError: ``tile_size``, ``overlap``, ``batch_size`` or the QA block size (not a
            multiple of the scale) out of range.

    Nothing is left at ``out``, its sidecar or Item (nor in temporary folders) when an error
    is raised.
    """
    started = time.perf_counter()
    out, scene = os.fspath(out), os.fspath(scene)
    if reapply_offset and dtype != "uint16":
        raise ValueError(
            "reapply_offset writes the product's uint16 digital numbers; it cannot be combined "
            "with dtype='float32' (reflectance has no offset)"
        )
    gate = qa or QAGate()
    check_bundle(out, overwrite=overwrite, storage_options=storage_options)
    if isinstance(checkpoint, InferenceModel):
        model = checkpoint
    else:
        model = load_inference_model(
            checkpoint, use_ema=use_ema, device=device, precision=precision
        )
    _check_fit(model, bands, scale)
    degradation, degradation_source = model.lineage.qa_degradation()
    tile_size, batch_size = tiling_for(model, tile_size, batch_size, overlap)
    tiler = TiledSuperResolver(
        scene_predictor(model), model.scale, tile_size, overlap, batch_size, progress
    )
    options = {"resolution": resolution, "resampling": resampling, "harmonisation": harmonisation}
    # full-width strips, overview rows and QA buffers are reused, not faulted in anew; GDAL
    # keeps no more decoded input blocks than a row of the scene's file tiles
    with (
        retained_heap(),
        bounded_block_cache(),
        _open(scene, model, storage_options=storage_options, **options) as opened,
    ):
        s, width, height = model.scale, opened.width, opened.height
        nodata = output_nodata(opened.nodata, dtype)
        grid = OutputGrid(
            crs=opened.crs,
            transform=opened.transform @ Affine.scale(1 / s),
            width=width * s,
            height=height * s,
            bands=model.bands,
            dtype=dtype,
            nodata=nodata,
        )
        profile = RasterProfile(
            width=grid.width,
            height=grid.height,
            crs=grid.crs,
            transform=grid.transform,
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
                "SR_UNITS": _units(dtype, reapply_offset),
                "SR_SOFTWARE": f"{DISTRIBUTION} {software_version()}",
                "SR_HARMONISATION": json.dumps(harmonisation_record(opened, reapply_offset)),
            },
        )
        tile_rows, tile_cols = tiler.grid(height, width)
        geometry = QAGeometry(
            model.bands,
            s,
            height,
            width,
            tuple(tile_rows),
            tuple(tile_cols),
            tile_size,
            opened.nodata,
        )
        scene_qa = SceneQA(geometry, gate, degradation, degradation_source)
        look = Quicklook(width, height, s, model.bands) if quicklook is not None else None
        threads = max(1, torch.get_num_threads())
        publisher = BundlePublisher(
            out, overwrite=overwrite, storage_options=storage_options, work_dir=work_dir
        )
        with CogWriter(
            out,
            profile,
            overwrite=overwrite,
            storage_options=storage_options,
            work_dir=work_dir,
            threads=threads,
        ) as writer:
            restore = opened.harmonisation if reapply_offset else None
            sink = StripSink(
                opened, s, writer, dtype, look, scene_qa, restore, strip_rows=min(tile_size, height)
            )
            for block in tiler.stream(sink.read, height, width):
                sink.write(block)
            qa_started = time.perf_counter()
            checked = scene_qa.finish()
            try:
                sidecar = publisher.sidecar(checked.grids, grid, gate.block_size)
                qa_seconds = scene_qa.seconds + time.perf_counter() - qa_started
                summary = replace(checked.summary, sidecar=sidecar, seconds=round(qa_seconds, 3))
                provenance_started = time.perf_counter()
                lineage = _lineage(
                    model, opened, scene, harmonisation_record(opened, reapply_offset)
                )
                item_id = PurePosixPath(out).name.removesuffix(".tif")
                item = stac_item(item_id, grid, lineage, summary.as_dict(), out, sidecar)
                item_path = publisher.item(item.to_dict(include_self_link=False))
                provenance_seconds = time.perf_counter() - provenance_started
                cog_started = time.perf_counter()
                published = writer.commit()
                cog_seconds = time.perf_counter() - cog_started
            except BaseException:
                publisher.roll_back()
                raise
        look_path = look.save(quicklook) if look is not None and quicklook is not None else None
        crs = opened.crs.to_string()
    total = time.perf_counter() - started
    t = tiler.timings
    seconds = {
        "read": t.read,
        "model": t.model,
        "blend": t.blend,
        "write": sink.seconds,
        "cog": cog_seconds,
        "qa": qa_seconds,
        "provenance": provenance_seconds,
        "total": total,
    }
    result = SuperResolveResult(
        output=published,
        qa_sidecar=sidecar,
        stac_item=item_path,
        scene=scene,
        scene_id=lineage.scene_id,
        checkpoint=model.checkpoint,
        checkpoint_sha256=lineage.checkpoint_sha256,
        weights=model.weights,
        run_key=lineage.run_key,
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
        qa=summary,
    )
    log.info("super-resolved %s → %s in %.1f s; QA %s", scene, published, total, summary.verdict)
    return result


def _lineage(
    model: InferenceModel, opened: Scene, scene: str, harmonisation: dict[str, Any] | None
) -> OutputLineage:
    """The output's lineage; ``harmonisation`` from :func:`harmonisation_record`."""
    recorded = model.lineage
    return OutputLineage(
        scene_id=opened.scene_id,
        scene=scene,
        harmonisation=harmonisation,
        checkpoint=model.checkpoint,
        checkpoint_sha256=file_sha256(model.checkpoint),
        weights=model.weights,
        run_key=recorded.run_key,
        store=recorded.store or model.config.data.store,
        store_version=recorded.store_version or model.config.data.version,
        degradation=recorded.degradation,
        software=f"{DISTRIBUTION} {software_version()}",
    )
