"""Tasks of the ``super-resolve`` flow: pick the checkpoint, run the scene, register artifacts,
apply the QA gate."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from datasets.harmonise import HarmonisationParam
from srgan.qa_gate import QAGate
from srgan.sr_result import SuperResolveResult
from srgan.super_resolve_scene import super_resolve_scene
from tasks.sr_progress import TileProgressArtifact
from tasks.storage import join, storage_root

# the flow's parameter and result types, re-exported: flows import tasks only
__all__ = ["HarmonisationParam", "QAGate", "SuperResolveResult"]


def default_output(scene: str, storage: str | None = None) -> str:
    """``<storage>/super-resolved/<scene name>_sr.tif``."""
    name = scene.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "scene"
    return join(storage_root(storage), "super-resolved", f"{name}_sr.tif")


@dataclass(frozen=True)
class SceneRun:
    """A super-resolved scene and its quicklook (base64 PNG), as one task hands it to the next."""

    result: SuperResolveResult
    quicklook_png: str


@dataclass(frozen=True)
class SuperResolveArtifacts:
    """Keys of the artifacts a run registered (``gate``: only when the QA gate broke)."""

    output: str
    quicklook: str
    stats: str
    qa: str
    item: str
    gate: str | None = None


class QAGateFailed(RuntimeError):
    """The output broke the QA gate and ``on_fail="fail"``; the files are kept for inspection."""


@task(name="super-resolve-scene")
def super_resolve_scene_task(
    scene: str,
    checkpoint: str,
    out: str,
    bands: list[str] | None = None,
    tile_size: int = 128,
    overlap: int = 16,
    batch_size: int = 8,
    use_ema: bool = True,
    overwrite: bool = False,
    qa: QAGate | None = None,
    harmonisation: HarmonisationParam | None = None,
    reapply_offset: bool = False,
) -> SceneRun:
    """Super-resolve one scene into a COG with its QA sidecar and STAC Item, showing progress."""
    logger = get_run_logger()
    name = scene.rstrip("/").rsplit("/", 1)[-1]
    progress = TileProgressArtifact(name, logger)
    with tempfile.TemporaryDirectory(prefix="s2sr-quicklook-") as tmp:
        result = super_resolve_scene(
            scene,
            checkpoint,
            out,
            bands=bands,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            use_ema=use_ema,
            overwrite=overwrite,
            quicklook=Path(tmp) / "quicklook.png",
            progress=progress,
            qa=qa,
            harmonisation=harmonisation,
            reapply_offset=reapply_offset,
        )
        png = base64.b64encode(Path(str(result.quicklook)).read_bytes()).decode()
    logger.info(
        "wrote %s (%.2f MP/s on %s); QA %s",
        result.output,
        result.megapixels_per_second,
        result.device,
        result.qa.verdict,
    )
    return SceneRun(result, png)


def stats_rows(result: SuperResolveResult) -> list[dict[str, Any]]:
    """The run-stats table: one ``{"stat", "value"}`` row per number."""
    rows: list[dict[str, Any]] = [
        {"stat": "device", "value": result.device},
        {"stat": "megapixels per second (SR output)", "value": result.megapixels_per_second},
        {
            "stat": "pixels per second (SR output)",
            "value": round(result.megapixels_per_second * 1e6),
        },
        {"stat": "LR size (width x height)", "value": "x".join(map(str, result.lr_size))},
        {"stat": "SR size (width x height)", "value": "x".join(map(str, result.sr_size))},
        {"stat": "tiles", "value": result.tiles},
        {"stat": "weights", "value": result.weights},
        {"stat": "peak RSS (MiB)", "value": result.peak_rss_mb},
    ]
    rows += [{"stat": f"seconds: {k}", "value": v} for k, v in result.seconds.items()]
    return rows


def _link(uri: str) -> str:
    return uri if "://" in uri else Path(uri).resolve().as_uri()


@task(name="register-super-resolve-artifacts")
def register_super_resolve_artifacts(
    run: SceneRun, key_prefix: str = "super-resolve"
) -> SuperResolveArtifacts:
    """Link to the COG and its STAC Item, LR | SR quicklook, run-stats and QA tables."""
    result = run.result
    keys = SuperResolveArtifacts(
        output=f"{key_prefix}-output",
        quicklook=f"{key_prefix}-quicklook",
        stats=f"{key_prefix}-stats",
        qa=f"{key_prefix}-qa",
        item=f"{key_prefix}-stac-item",
    )
    create_link_artifact(
        key=keys.output,
        link=_link(result.output),
        link_text=result.output,
        description=f"super-resolved {result.scene_id} (×{result.scale}, COG)",
    )
    create_link_artifact(
        key=keys.item,
        link=_link(result.stac_item),
        link_text=result.stac_item,
        description="STAC Item: lineage (scene, checkpoint sha256, run, store) and QA summary",
    )
    create_markdown_artifact(
        key=keys.quicklook,
        markdown=(
            f"LR (nearest) | SR ×{result.scale}, centre crop of `{result.scene_id}`\n\n"
            f"![quicklook](data:image/png;base64,{run.quicklook_png})"
        ),
        description="LR | SR quicklook",
    )
    create_table_artifact(key=keys.stats, table=stats_rows(result), description="run stats")
    create_table_artifact(
        key=keys.qa,
        table=result.qa.table(),
        description=(
            f"QA {result.qa.verdict}: consistency with the input "
            f"(degradation: {result.qa.degradation_source}); per-block map: {result.qa_sidecar}"
        ),
    )
    return keys


@task(name="qa-gate")
def apply_qa_gate(
    run: SceneRun, gate: QAGate, keys: SuperResolveArtifacts, key_prefix: str = "super-resolve"
) -> SuperResolveArtifacts:
    """Apply the gate's verdict: raise :class:`QAGateFailed` (``on_fail="fail"``: the run ends
    Failed) or register a warning artifact (``"warn"``: the run completes); returns the keys.

    Raises:
        QAGateFailed: The output broke the gate and ``gate.on_fail`` is ``"fail"``.
    """
    qa = run.result.qa
    if qa.verdict == "passed":
        return keys
    reasons = "\n".join(f"- {r}" for r in qa.reasons)
    key = f"{key_prefix}-qa-gate"
    create_markdown_artifact(
        key=key,
        markdown=(
            f"## QA gate broken: `{run.result.scene_id}`\n\n{reasons}\n\n"
            f"Output kept for inspection: `{run.result.output}`; per-block QA map "
            f"(band `flags`, bits 1 reflectance, 2 spectral angle, 4 shift): "
            f"`{run.result.qa_sidecar}`; STAC Item: `{run.result.stac_item}`."
        ),
        description=f"QA gate broken ({gate.on_fail})",
    )
    if gate.on_fail == "fail":
        raise QAGateFailed(
            f"{run.result.output} broke the QA gate: {' '.join(qa.reasons)} "
            f"(QA map: {run.result.qa_sidecar}; to keep such outputs as warnings, set "
            "qa.on_fail='warn')"
        )
    get_run_logger().warning("%s broke the QA gate: %s", run.result.output, " ".join(qa.reasons))
    return replace(keys, gate=key)
