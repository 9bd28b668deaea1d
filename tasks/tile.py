"""Tasks of ``tile-sentinel2``: check parameters, find scenes, tile one scene into the patch
store, report progress, summarise."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from types import TracebackType
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.logging import get_run_logger

from datasets.degradation import Degradation
from datasets.errors import PatchStoreError, TilingError, is_transient
from datasets.patch_store import store_version
from datasets.scenes import find_scenes
from datasets.scenes.bands import check_bands
from datasets.split_policy import SplitPolicy
from datasets.store_backends import Backend, detect_backend
from datasets.tiling import check_tiling_params, tile_scene


def check_run_parameters(
    bands: Sequence[str], scale: int, patch_size: int, stride: int | None
) -> None:
    """Refuse what every scene's task would refuse, once for the whole run (the filter
    fractions are bounded by the flow's parameter schema already).

    Raises:
        TilingError: ``patch_size`` or ``stride`` is not a multiple of ``scale``, or a band name
            is unknown or repeated.
    """
    check_tiling_params(scale, patch_size, patch_size if stride is None else stride)
    try:
        check_bands(bands)
    except ValueError as err:
        raise TilingError(f"bands: {err}") from None


class TilingProgress:
    """The run's progress artifact: finished scenes plus the rows done of scenes being tiled.

    Tile tasks in this process (the thread-pool runner) report rows through the artifact id they
    are given; tasks in other processes (Dask workers) find no tracker there, so the artifact then
    advances per finished scene. Row updates are throttled to one per 5 % or per 10 s, and the
    value never goes back (a retried scene starts its rows again).

    Example::

        with TilingProgress(len(scenes)) as progress:
            ...  # tile_one_scene.submit(uri, ..., progress_id=progress.id)
            progress.scene_done(uri)
    """

    _STEP_PERCENT = 5.0
    _STEP_SECONDS = 10.0

    def __init__(self, n_scenes: int) -> None:
        self._n_scenes = n_scenes
        self._fractions: dict[str, float] = {}
        self._reported = 0.0
        self._reported_at = time.monotonic()
        self._lock = threading.Lock()
        self.id: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0, key="tile-sentinel2-progress", description="scenes tiled"
        )

    def __enter__(self) -> TilingProgress:
        _ACTIVE_PROGRESS[self.id] = self
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        _ACTIVE_PROGRESS.pop(self.id, None)

    @staticmethod
    def report_rows(progress_id: UUID | None, scene_uri: str, fraction: float) -> None:
        """Record that ``fraction`` of a scene's rows are tiled, if its run is tracked here."""
        tracker = _ACTIVE_PROGRESS.get(progress_id) if progress_id is not None else None
        if tracker is not None:
            tracker._update(scene_uri, fraction, force=False)

    def scene_done(self, scene_uri: str) -> None:
        """Count a scene as finished (tiled or failed) and update the artifact now."""
        self._update(scene_uri, 1.0, force=True)

    def _update(self, scene_uri: str, fraction: float, force: bool) -> None:
        with self._lock:
            self._fractions[scene_uri] = fraction
            percent = 100.0 * sum(self._fractions.values()) / self._n_scenes
            now = time.monotonic()
            due = (
                percent - self._reported >= self._STEP_PERCENT
                or now - self._reported_at >= self._STEP_SECONDS
            )
            if percent > self._reported and (force or due):
                update_progress_artifact(self.id, percent)
                self._reported, self._reported_at = percent, now


# the runs of this process with a tracker, by artifact id; the tile tasks' row callbacks look here
_ACTIVE_PROGRESS: dict[UUID, TilingProgress] = {}


@task(
    name="store-backend",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=lambda task, run, state: _retryable(state),
)
def store_backend(store: str) -> Backend | None:
    """Backend of the store (``icechunk`` or ``zarr``), ``None`` if there is none yet."""
    return detect_backend(store)


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
    progress_id: UUID | None = None,
) -> dict[str, Any]:
    """Tile one scene; returns counts (never arrays). ``progress_id``: a :class:`TilingProgress`."""
    logger = get_run_logger()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            logger.info("%s: %d/%d rows of patches", scene_uri, done, total)
        TilingProgress.report_rows(progress_id, scene_uri, done / total)

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
