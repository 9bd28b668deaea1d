"""Tasks of ``tile-sentinel2``: find scenes, tile one scene into the patch store, report
progress, summarise what the store holds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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

from datasets.errors import PatchStoreError, StoreMismatchError, is_transient
from datasets.scenes import find_scenes
from datasets.stac_search import StacSearch, search_scenes
from datasets.store_backends import DEFAULT_BACKEND, Backend, detect_backend, read_snapshot
from datasets.tiling import TileResult, tile_scene
from datasets.tiling_params import TilingParams
from datasets.tiling_summary import TilingSummary, summarise_store


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
def store_backend(store: str, requested: Backend | None = None) -> Backend:
    """The backend the run's appends use: the store's own, else ``requested``, else the default.

    Raises:
        StoreMismatchError: the store exists with the other backend than ``requested``.
    """
    existing = detect_backend(store)
    if existing is not None and requested is not None and requested != existing:
        raise StoreMismatchError(
            f"patch store {store} uses the {existing!r} backend, not {requested!r}; leave "
            f"backend unset (or {existing!r}), or choose a new store URI"
        )
    return existing or requested or DEFAULT_BACKEND


@task(
    name="scenes-in-store",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=lambda task, run, state: _retryable(state),
)
def scenes_in_store(store: str) -> list[str]:
    """Ids of the scenes the store holds now (none for a new store): the summary tells the
    scenes a run added from those it found, whatever its tasks' attempts reported."""
    try:
        return [entry.scene_id for entry in read_snapshot(store, None, None).manifest.scenes]
    except PatchStoreError:
        return []


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
    name="search-stac",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=lambda task, run, state: _retryable(state),
)
def search_stac_scenes(search: StacSearch) -> list[str]:
    """Item URLs of a STAC API search (least cloudy first)."""
    found = search_scenes(search)
    get_run_logger().info("found %d Item(s) in %s (%s)", len(found), search.url, search.collection)
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
    params: TilingParams,
    progress_id: UUID | None = None,
    backend: Backend | None = None,
) -> TileResult:
    """Tile one scene; returns counts (never arrays). ``progress_id``: a :class:`TilingProgress`;
    ``backend``: that of a new store."""
    logger = get_run_logger()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            logger.info("%s: %d/%d rows of patches", scene_uri, done, total)
        TilingProgress.report_rows(progress_id, scene_uri, done / total)

    return tile_scene(scene_uri, store, params, backend=backend, progress=progress)


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


@dataclass(frozen=True)
class TileFailure:
    """A scene whose task failed: its URI and the error, in one line."""

    scene_uri: str
    error: str


@task(name="summarise-tiling")
def summarise_tiling(
    store: str,
    results: list[TileResult],
    failures: list[TileFailure],
    present_before: list[str] | None = None,
) -> TilingSummary:
    """What the store holds for each scene of the run (not what the last attempt wrote): a table
    artifact (kept, val, dropped per reason, harmonisation, mask) and a markdown summary; warns
    when the store has no validation patches. ``present_before``: the scenes the store held
    when the run began (:func:`scenes_in_store`); the others count as added."""
    failed = [(f.scene_uri, f.error) for f in failures]
    summary = summarise_store(store, results, failed, present_before=present_before)
    create_table_artifact(
        key="tile-sentinel2-scenes", table=summary.table(), description="patches per scene"
    )
    create_markdown_artifact(
        key="tile-sentinel2-summary", markdown=summary.markdown(), description="tiling summary"
    )
    if summary.warning:
        get_run_logger().warning(summary.warning)
    return summary
