"""Tasks of the ``super-resolve`` flow: pick the checkpoint, run the scene, register artifacts."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from srgan.super_resolve_scene import super_resolve_scene
from tasks.storage import join, storage_root


def default_output(scene: str, storage: str | None = None) -> str:
    """``<storage>/super-resolved/<scene name>_sr.tif``."""
    name = scene.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "scene"
    return join(storage_root(storage), "super-resolved", f"{name}_sr.tif")


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
) -> dict[str, Any]:
    """Super-resolve one scene into a COG; returns the run's paths and stats, quicklook embedded."""
    logger = get_run_logger()
    reported = [0]

    def progress(done: int, total: int) -> None:
        percent = 100 * done // total
        if percent >= reported[0] + 10 or done == total:
            reported[0] = percent
            logger.info("super-resolved %d/%d LR rows (%d%%)", done, total, percent)

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
        ).as_dict()
        png = Path(result.pop("quicklook"))
        result["quicklook_png"] = base64.b64encode(png.read_bytes()).decode()
    logger.info(
        "wrote %s (%.2f MP/s on %s)", out, result["megapixels_per_second"], result["device"]
    )
    return result


def stats_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The run-stats table: one ``{"stat", "value"}`` row per number."""
    rows: list[dict[str, Any]] = [
        {"stat": "device", "value": result["device"]},
        {"stat": "megapixels per second (SR output)", "value": result["megapixels_per_second"]},
        {
            "stat": "pixels per second (SR output)",
            "value": round(result["megapixels_per_second"] * 1e6),
        },
        {"stat": "LR size (width x height)", "value": "x".join(map(str, result["lr_size"]))},
        {"stat": "SR size (width x height)", "value": "x".join(map(str, result["sr_size"]))},
        {"stat": "tiles", "value": result["tiles"]},
        {"stat": "weights", "value": result["weights"]},
        {"stat": "peak RSS (MiB)", "value": result["peak_rss_mb"]},
    ]
    rows += [{"stat": f"seconds: {k}", "value": v} for k, v in result["seconds"].items()]
    return rows


def _link(uri: str) -> str:
    return uri if "://" in uri else Path(uri).resolve().as_uri()


@task(name="register-super-resolve-artifacts")
def register_super_resolve_artifacts(
    result: dict[str, Any], key_prefix: str = "super-resolve"
) -> dict[str, str]:
    """Link to the COG, LR | SR quicklook, run-stats table; returns the artifact keys."""
    keys = {
        "output": f"{key_prefix}-output",
        "quicklook": f"{key_prefix}-quicklook",
        "stats": f"{key_prefix}-stats",
    }
    output = result["output"]
    create_link_artifact(
        key=keys["output"],
        link=_link(output),
        link_text=output,
        description=f"super-resolved {result['scene_id']} (×{result['scale']}, COG)",
    )
    create_markdown_artifact(
        key=keys["quicklook"],
        markdown=(
            f"LR (nearest) | SR ×{result['scale']}, centre crop of `{result['scene_id']}`\n\n"
            f"![quicklook](data:image/png;base64,{result['quicklook_png']})"
        ),
        description="LR | SR quicklook",
    )
    create_table_artifact(key=keys["stats"], table=stats_rows(result), description="run stats")
    return keys
