"""Flow ``tile-sentinel2`` on a Dask cluster, writing one S3 patch store from several workers.

The cluster is a :class:`distributed.LocalCluster` of worker processes reached through its
scheduler address, as an existing cluster would be; the S3 server is moto on 127.0.0.1. The
workers read their S3 endpoint and credentials from the standard ``AWS_*`` variables, as the
workers of a real cluster would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client

from datasets.patch_store import open_patch_store, store_info
from datasets.split_policy import SplitPolicy
from flows.tile import tile_sentinel2

PATCH = 32
SPLIT = SplitPolicy(mode="block", block_size=64, val_fraction=0.3)
PER_PATCH = ("hr", "lr", "split", "row_off", "col_off", "transform")


@pytest.fixture
def aws_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 server as ``AWS_*`` variables (set before the cluster starts: workers inherit)."""
    env = {
        "AWS_ENDPOINT_URL": s3_server["endpoint_url"],
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def dask_address(aws_env: dict[str, str]) -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _by_scene(uri: str) -> dict[str, dict[str, np.ndarray]]:
    """Every per-patch array of each scene, in the scene's own patch order."""
    ds = open_patch_store(uri).load()
    scenes: dict[str, dict[str, np.ndarray]] = {}
    for scene_id in np.unique(ds["scene_id"].values):
        part = ds.isel(patch=np.flatnonzero(ds["scene_id"].values == scene_id))
        scenes[str(scene_id)] = {name: part[name].values for name in PER_PATCH}
    return scenes


def _tile_runs(state: Any) -> list[Any]:
    """The per-scene task runs of a ``tile-sentinel2`` run (they live in its subflow run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[c.id for c in children])
            )
        )
    return [r for r in runs if r.name.startswith("tile-")]


def _tile(scenes: list[str], store: str, **params: Any) -> Any:
    return tile_sentinel2(
        scenes=scenes, store=store, patch_size=PATCH, split=SPLIT, return_state=True, **params
    )


@pytest.mark.slow
def test_dask_workers_write_the_s3_store_a_sequential_run_writes(
    prefect_api: None, s3_sample_scenes: Any, dask_address: str
) -> None:
    """Same scenes, patches, coordinates and parameters; only the order in which the scenes
    were committed (so their place along ``patch``) and the snapshot ids may differ."""
    scenes = list(s3_sample_scenes.bigearthnet)
    bucket = f"s3://{s3_sample_scenes.bucket}"
    sequential = _tile(scenes, f"{bucket}/dask-test/sequential.zarr", max_workers=1)
    assert sequential.is_completed(), sequential.message
    parallel = _tile(scenes, f"{bucket}/dask-test/dask.zarr", dask_address=dask_address)
    assert parallel.is_completed(), parallel.message

    expected = _by_scene(f"{bucket}/dask-test/sequential.zarr")
    got = _by_scene(f"{bucket}/dask-test/dask.zarr")
    assert sorted(got) == sorted(expected) and len(got) == len(scenes)
    for scene_id, arrays in expected.items():
        for name, value in arrays.items():
            np.testing.assert_array_equal(got[scene_id][name], value, err_msg=name)
    a = store_info(f"{bucket}/dask-test/sequential.zarr")
    b = store_info(f"{bucket}/dask-test/dask.zarr")
    assert (a.n_patches, a.bands, a.degradation) == (b.n_patches, b.bands, b.degradation)
    assert parallel.result().patches_added == sum(a.n_patches.values())

    runs = _tile_runs(parallel)
    assert len(runs) == len(scenes) and all(r.state.is_completed() for r in runs)
    # the scenes really were tiled by several worker processes of the cluster
    with Client(dask_address) as client:
        transitions = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert sum(n > 0 for n in transitions.values()) >= 2, transitions


@pytest.mark.slow
def test_the_summary_is_the_store_after_a_worker_is_lost_mid_run(
    prefect_api: None, s3_sample_scenes: Any, dask_address: str, tmp_path: Any
) -> None:
    """A worker killed right after it committed a scene: the scheduler runs that scene's task
    again, which finds the scene committed; the summary still counts it as added by this run.

    Broken by hand once: counting a scene as added only when its last attempt wrote it
    (``present_before=None``) gives ``patches_added`` short of the store by that scene.
    """
    from dask_faults import KillWorkerAfterFirstTask

    marker = str(tmp_path / "killed-worker")
    with Client(dask_address) as client:
        client.register_plugin(KillWorkerAfterFirstTask(marker))
    scenes = list(s3_sample_scenes.bigearthnet)
    store = f"s3://{s3_sample_scenes.bucket}/dask-test/worker-lost.zarr"

    state = _tile(scenes, store, dask_address=dask_address)

    assert state.is_completed(), state.message
    assert Path(marker).is_file()  # a worker was killed
    summary = state.result()
    info = store_info(store)
    assert len(info.scenes) == len(scenes)
    assert [row.status for row in summary.rows] == ["added"] * len(scenes)
    assert summary.patches_added == sum(info.n_patches.values())
    assert sum(row.kept for row in summary.rows) == sum(info.n_patches.values())
