"""Tasks of ``tile-sentinel2``: find scenes, tile one scene into the patch store, summarise."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from datasets.degradation import Degradation
from datasets.errors import PatchStoreError, is_transient
from datasets.patch_store import store_version
from datasets.scenes import find_scenes
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene


@task(
    name="find-scenes",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=lambda task, run, state: _retryable(state),
)
def find_scene_uris(scan: str) -> list[str]:
    """Scenes under a local folder or ``s3://`` prefix (band folders, .SAFE, multi-band TIFFs)."""
    found = find_scenes(scan)
    get_run_logger().info("found %d scene(s) under %s", len(found), scan)
    return found


@task(
    name="tile-scene",
    # transient errors (S3 hiccups, a lost Icechunk commit race) are retried; appends are idempotent
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=lambda task, run, state: _retryable(state),
    task_run_name=lambda: f"tile-{_scene_name()}",
)
def tile_one_scene(
    scene_uri: str,
    store: str,
    bands: list[str],
    scale: int,
    patch_size: int,
    stride: int | None,
    degradation: Degradation,
    split: SplitPolicy,
    max_nodata_fraction: float,
    max_bright_fraction: float | None,
    resampling: str | None = None,
) -> dict[str, Any]:
    """Tile one scene; returns counts (never arrays)."""
    logger = get_run_logger()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            logger.info("%s: %d/%d rows of patches", scene_uri, done, total)

    result = tile_scene(
        scene_uri,
        store,
        bands=bands,
        scale=scale,
        patch_size=patch_size,
        stride=stride,
        degradation=degradation,
        split=split,
        max_nodata_fraction=max_nodata_fraction,
        max_bright_fraction=max_bright_fraction,
        resampling=resampling,
        progress=progress,
    )
    return {"scene_uri": scene_uri, **asdict(result)}


def _scene_name() -> str:
    from prefect.runtime import task_run

    uri = str(task_run.parameters.get("scene_uri", "scene")).rstrip("/")
    return uri.rsplit("/", 1)[-1]


def _retryable(state: Any) -> bool:
    """Retry what may not recur (network errors, a lost commit race), not what would fail
    again (bad input, a missing scene, a store that is not a patch store)."""
    try:
        state.result()
    except Exception as err:
        return is_transient(err)
    return False


def _latest_version(store: str) -> str | None:
    """The store's version after every commit: tasks commit in any order, not in list order."""
    try:
        return store_version(store)
    except PatchStoreError:
        return None


@task(name="summarise-tiling")
def summarise_tiling(
    store: str, results: list[dict[str, Any]], failures: list[dict[str, str]]
) -> dict[str, Any]:
    """Table artifact (per scene: kept/dropped and why) and a markdown summary."""
    rows = [
        {
            "scene": r["scene_id"],
            "kept": r["patches_kept"],
            "val": r["patches_val"],
            "dropped_nodata": r["dropped_nodata"],
            "dropped_bright": r["dropped_bright"],
            "dropped_straddling": r["dropped_straddling"],
            "status": "already in store" if r["skipped_existing"] else "added",
        }
        for r in results
    ] + [{"scene": f["scene_uri"], "kept": 0, "status": f"failed: {f['error']}"} for f in failures]
    create_table_artifact(key="tile-sentinel2-scenes", table=rows, description="patches per scene")
    kept = sum(r["patches_kept"] for r in results)
    version = _latest_version(store) if results else None
    summary = (
        f"# Tiling summary\n\n- store: `{store}` (version `{version}`)\n"
        f"- scenes: {len(results)} tiled "
        f"({sum(r['skipped_existing'] for r in results)} already present), "
        f"{len(failures)} failed\n- patches added: {kept}\n"
    )
    create_markdown_artifact(
        key="tile-sentinel2-summary", markdown=summary, description="tiling summary"
    )
    return {
        "store": store,
        "version": version,
        "patches_added": kept,
        "scenes": len(results),
        "failed": len(failures),
    }
