"""``tile-sentinel2`` when scenes, stores or parameters are bad: what fails, what is retried,
what is kept (one temporary Prefect server per test session)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tile_flow_runs as runs
from loopback import refusing_url

import tasks.tile
from datasets.patch_store import store_info
from tasks.storage import default_store

pytestmark = pytest.mark.slow


def test_a_bad_scene_fails_the_run_without_retries_and_keeps_the_good_ones(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    truncated = shutil.copytree(bigearthnet_dirs[0], tmp_path / "scenes" / "S2_truncated")
    b08 = next(truncated.glob("*_B08.tif"))
    b08.write_bytes(b08.read_bytes()[: b08.stat().st_size // 2])
    no_b04 = shutil.copytree(bigearthnet_dirs[1], tmp_path / "scenes" / "S2_without_B04")
    next(no_b04.glob("*_B04.tif")).unlink()
    good = [str(d) for d in bigearthnet_dirs[2:4]]
    state = runs.tile(tmp_path / "storage", scenes=[good[0], str(truncated), str(no_b04), good[1]])
    assert state.is_failed()
    message = str(state.message)
    assert "2 of 4 scene(s) failed" in message
    assert "S2_truncated" in message and "S2_without_B04" in message and "B04" in message
    info = store_info(default_store(str(tmp_path / "storage")))
    assert sorted(info.scenes) == sorted(Path(g).name for g in good)
    rows = runs.table(state)
    for bad in (truncated, no_b04):
        assert rows[str(bad)]["status"].startswith("failed: ")
    bad_runs = [
        t for t in runs.task_runs(state) if t.name in ("tile-S2_truncated", "tile-S2_without_B04")
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
    state = runs.tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])])
    assert state.is_completed(), state.message
    (run,) = [t for t in runs.task_runs(state) if t.name.startswith("tile-S2")]
    assert run.run_count == 2 and len(calls) == 2


def test_a_folder_that_is_not_a_patch_store_fails_without_retries(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path
) -> None:
    import zarr

    foreign = tmp_path / "someone-elses.zarr"
    zarr.open_group(str(foreign), mode="w", zarr_format=3)
    state = runs.tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], store=str(foreign))
    assert state.is_failed() and "not an s2-srgan patch store" in str(state.message)
    (run,) = [t for t in runs.task_runs(state) if t.name.startswith("tile-S2")]
    assert run.state.is_failed() and run.run_count == 1


def test_no_scenes_is_a_clear_error(prefect_api: None, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for params in ({}, {"scenes": []}, {"scan": str(tmp_path / "empty")}):
        state = runs.tile(tmp_path / "storage", **params)
        assert state.is_failed()
        assert "no scenes to tile" in str(state.message)
    assert not (tmp_path / "storage").exists()


def test_a_missing_scan_folder_fails_without_retries(prefect_api: None, tmp_path: Path) -> None:
    state = runs.tile(tmp_path / "storage", scan=str(tmp_path / "nowhere"))
    assert state.is_failed() and "nowhere does not exist" in str(state.message)
    (scan,) = [t for t in runs.task_runs(state) if t.name.startswith("find-scenes")]
    assert scan.run_count == 1


@pytest.mark.parametrize(
    "params", [{"scale": 3}, {"max_nodata_fraction": 1.5}, {"bands": []}], ids=str
)
def test_bad_parameters_are_refused_before_any_task_runs(
    prefect_api: None, bigearthnet_dirs: list[Path], tmp_path: Path, params: dict[str, Any]
) -> None:
    state = runs.tile(tmp_path / "storage", scenes=[str(bigearthnet_dirs[0])], **params)
    assert state.is_failed()
    assert "Validation of flow parameters failed" in str(state.message)
    assert next(iter(params)) in str(state.message)
    assert runs.task_runs(state) == []
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
    state = runs.tile(tmp_path / "storage", scenes=scenes, **params)
    assert state.is_failed()
    assert "TilingError" in str(state.message) and says in str(state.message)
    assert runs.task_runs(state) == []
    assert not (tmp_path / "storage").exists()
