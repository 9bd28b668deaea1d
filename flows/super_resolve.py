"""Flow ``super-resolve``: a scene in, a georeferenced COG at the HR grid out, with its QA sidecar,
STAC Item and artifacts.

Run it with ``prefect deployment run super-resolve/super-resolve -p scene=<uri>``; by default
it uses the registered champion (``<storage>/registry/champion.json``) and writes
``<storage>/super-resolved/<scene>_sr.tif``. An output that breaks the QA gate ends the run
Failed (``qa.on_fail="fail"``, the default) or Completed with a ``super-resolve-qa-gate``
warning artifact (``"warn"``); its files are kept either way.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from tasks.credentials import s3_credentials
from tasks.registry import resolve_checkpoint
from tasks.super_resolve import (
    HarmonisationParam,
    QAGate,
    SuperResolveResult,
    apply_qa_gate,
    default_output,
    register_super_resolve_artifacts,
    super_resolve_scene_task,
)


@flow(name="super-resolve", log_prints=True)
def super_resolve(
    scene: str,
    checkpoint: str = "champion",
    out: str | None = None,
    bands: list[str] | None = None,
    tile_size: Annotated[int, Field(ge=8)] = 128,
    overlap: Annotated[int, Field(ge=0)] = 16,
    batch_size: Annotated[int, Field(ge=1)] = 8,
    use_ema: bool = True,
    overwrite: bool = False,
    storage: str | None = None,
    credentials_block: str | None = None,
    qa: QAGate = QAGate(),
    harmonisation: HarmonisationParam | None = None,
    reapply_offset: bool = False,
) -> SuperResolveResult:
    """Super-resolve one Sentinel-2 scene.

    Args:
        scene: band folder, ``.SAFE`` product (zipped or not), STAC Item or multi-band raster;
            local, ``s3://`` or (Items) ``https://``.
        checkpoint: ``.ckpt`` path or ``s3://`` URI, or ``"champion"`` for the registered one.
        out: output COG path or ``s3://`` URI (default: under ``<storage>/super-resolved/``);
            its QA sidecar ``<stem>_qa.tif`` and STAC Item ``<stem>.stac-item.json`` go beside.
        bands: expected bands (default: the checkpoint's; anything else is refused).
        tile_size: LR tile edge in pixels.
        overlap: LR overlap of neighbouring tiles (≤ ``tile_size // 2``).
        batch_size: tiles per generator call.
        use_ema: use the EMA generator weights (default) rather than the raw ones.
        overwrite: replace an existing output (and its sidecar and Item).
        storage: storage root (default ``$S2SR_STORAGE`` or ``./.s2sr``), local or ``s3://``.
        credentials_block: name of a ``Secret`` block holding the ``AWS_*`` variables for S3
            (default: the worker's environment, ``~/.aws`` or the instance role).
        qa: QA block size, gate thresholds and what a broken gate does (``docs/trust.md``).
        harmonisation: radiometry of a scene without product metadata or STAC Item, e.g.
            ``{"offset": -1000}`` for bare band files of a product from 2022-01-25 on.
        reapply_offset: write the product's own digital numbers (e.g. +1000 for baseline
            04.00) instead of harmonised reflectance ×10000.
    """
    with s3_credentials(credentials_block):
        uri = resolve_checkpoint(checkpoint, storage)
        target = out or default_output(scene, storage)
        run = super_resolve_scene_task(
            scene,
            uri,
            target,
            bands,
            tile_size,
            overlap,
            batch_size,
            use_ema,
            overwrite,
            qa,
            harmonisation,
            reapply_offset,
        )
        keys = register_super_resolve_artifacts(run)
        apply_qa_gate(run, qa, keys)
    return run.result
