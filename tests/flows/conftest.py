"""Shared fixtures of the flow tests: a real patch store, a tiny training config, Prefect readers.

The patch store is cut from the six real BigEarthNet-S2 patches (120×120 px at 10 m) into 32 px
HR / 8 px LR pairs with 64 px split blocks: 49 train and 5 validation patches in about two
seconds. Flows run in-process against one temporary Prefect server per test module
(:func:`prefect_api`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import torch
from toy_data import TINY_RUN

from srgan.config import deep_merge

BANDS = ["B02", "B03", "B04", "B08"]

#: Networks and schedules small enough for a flow run of a few seconds on one CPU thread.
TINY: dict[str, Any] = deep_merge(
    TINY_RUN,
    {
        "validation": {"every_n_iterations": 6, "train_metrics_every": 2},
        "trainer": {"checkpoint_every_n_iterations": 3, "log_every_n_iterations": 3},
    },
)
# the flows' own max_iterations parameter sets the length
TINY["schedule"] = {k: v for k, v in TINY["schedule"].items() if k != "max_iterations"}

#: Training length of the flow tests; a multiple of the validation and checkpoint intervals.
ITERATIONS = 12

TRAINING_ARTIFACTS = {
    "srgan-best-checkpoint",
    "srgan-last-checkpoint",
    "srgan-validation-metrics",
    "srgan-training-report",
    "srgan-preview",
    "srgan-training-progress",
}


Overrides = Callable[..., dict[str, Any]]
Tiler = Callable[..., str]


def _tiny(**overrides: Any) -> dict[str, Any]:
    return deep_merge(TINY, overrides)


def _tile_store(
    scene_dirs: list[Path], store: str, bands: list[str] = BANDS, scale: int = 4
) -> str:
    from datasets.tiling import SplitPolicy, tile_scene

    for scene in scene_dirs:
        tile_scene(
            str(scene),
            store,
            bands=bands,
            scale=scale,
            patch_size=32,
            split=SplitPolicy(mode="block", block_size=64),
        )
    return store


@pytest.fixture(scope="session")
def tiny() -> Overrides:
    """``tiny(**overrides)``: :data:`TINY` with nested ``overrides`` merged in."""
    return _tiny


@pytest.fixture(scope="session")
def tile_store() -> Tiler:
    """``tile_store(scene_dirs, store, bands=BANDS, scale=4)``: tile scenes into ``store``
    (local path or ``s3://``) with 32 px patches and 64 px split blocks; returns ``store``."""
    return _tile_store


@pytest.fixture(scope="session")
def iterations() -> int:
    """Training length of the flow tests (a multiple of the validation/checkpoint intervals)."""
    return ITERATIONS


@pytest.fixture(scope="session")
def training_artifacts() -> set[str]:
    """Artifact keys every completed ``train-srgan`` run registers."""
    return set(TRAINING_ARTIFACTS)


@pytest.fixture(scope="session")
def patch_store(bigearthnet_dirs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local Icechunk patch store (B02, B03, B04, B08 at ×4) holding both splits; read only."""
    from datasets.patch_store import store_info

    store = tmp_path_factory.mktemp("patches") / "sentinel2.zarr"
    _tile_store(bigearthnet_dirs, str(store))
    counts = store_info(str(store)).n_patches
    assert counts["train"] > 0 and counts["val"] > 0, counts
    return store


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect server (SQLite) for the in-process flow runs of every test module.

    One per session (starting one costs 20-30 s on 2 cores), never nested: a second harness
    started inside a live one leaves Prefect's events client (which records task runs)
    talking to the wrong server. Tests find their own runs by flow run id, never "the newest".
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh storage root, also set as ``$S2SR_STORAGE``."""
    root = tmp_path / "storage"
    root.mkdir()
    monkeypatch.setenv("S2SR_STORAGE", str(root))
    return root


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Bit-exact comparisons and a shared 2-core machine both want one intra-op thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ArtifactReader = Callable[[UUID], dict[str, Any]]
LogReader = Callable[[UUID], list[str]]


@pytest.fixture
def read_artifacts() -> ArtifactReader:
    """``read(flow_run_id)``: the run's keyed artifacts by key (the newest one per key).

    Unkeyed artifacts are Prefect's records of persisted results (a failed run's exception).
    """

    def read(flow_run_id: UUID) -> dict[str, Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
        from prefect.client.schemas.sorting import ArtifactSort

        only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(artifact_filter=only_run, sort=ArtifactSort.CREATED_DESC)
        by_key: dict[str, Any] = {}
        for artifact in found:
            if artifact.key:
                by_key.setdefault(artifact.key, artifact)
        return by_key

    return read


@pytest.fixture
def read_logs() -> LogReader:
    """``read(flow_run_id)``: the messages of the run's logs (flow and task runs), in order."""

    def read(flow_run_id: UUID) -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.client.schemas.sorting import LogSort
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        only_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        messages: list[str] = []
        with get_client(sync_client=True) as client:
            while True:
                page = client.read_logs(
                    log_filter=only_run, sort=LogSort.TIMESTAMP_ASC, offset=len(messages)
                )
                messages += [log.message for log in page]
                if not page:
                    return messages

    return read


SecretCheck = Callable[..., dict[str, Any]]


@pytest.fixture
def check_s3_training_run(read_artifacts: ArtifactReader, read_logs: LogReader) -> SecretCheck:
    """``check(state, fs, bucket, storage, secret)``: a completed ``train-srgan`` run on
    ``s3://<bucket>/root`` wrote its checkpoints there, and ``secret`` is in none of its logs,
    artifacts, parameters, result, state message or checkpoints. Returns the run's artifacts,
    parameters (JSON text) and result for further checks."""

    def check(state: Any, fs: Any, bucket: str, storage: str, secret: str) -> dict[str, Any]:
        import json
        from dataclasses import asdict

        from prefect.client.orchestration import get_client

        assert state.is_completed(), state
        result = state.result()
        run_dir = f"{storage}/runs/{result.run_key}"
        assert result.fit.last_checkpoint == f"{run_dir}/checkpoints/last.ckpt"
        checkpoints = fs.find(f"{bucket}/root/runs/{result.run_key}/checkpoints")
        assert {p.rsplit("/", 1)[-1] for p in checkpoints} >= {"last.ckpt", "best.ckpt"}

        flow_run_id = state.state_details.flow_run_id
        logs = "\n".join(read_logs(flow_run_id))
        assert run_dir in logs  # the logs were read, and they name the run's S3 location
        artifacts = read_artifacts(flow_run_id)
        assert {"srgan-last-checkpoint", "srgan-training-report"} <= set(artifacts)
        with get_client(sync_client=True) as client:
            parameters = json.dumps(client.read_flow_run(flow_run_id).parameters)
        assert storage in parameters

        traces = {
            "logs": logs,
            "artifacts": "\n".join(f"{a.description}\n{a.data}" for a in artifacts.values()),
            "parameters": parameters,
            "result": json.dumps(asdict(result)),
            "state message": str(state.message),
        }
        for where, text in traces.items():
            assert secret not in text, f"the secret key leaked into the {where}"
        for path in checkpoints:
            assert secret.encode() not in fs.cat_file(path), f"the secret key leaked into {path}"
        return {"artifacts": artifacts, "parameters": parameters, "result": result}

    return check


@pytest.fixture
def s3_aws_variables(s3_server: Any) -> dict[str, str]:
    """The loopback S3 server's credentials as the ``AWS_*`` variables s3fs and Icechunk read."""
    return {
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_ENDPOINT_URL": s3_server["endpoint_url"],
        # Icechunk's S3 client wants a region whenever it is not given one explicitly.
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def attempts() -> Callable[[UUID], dict[str, int]]:
    """``attempts(flow_run_id)``: how often the run (``"flow"``) and each task run ran (1: no
    retry)."""

    def count(flow_run_id: UUID) -> dict[str, int]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        only_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        with get_client(sync_client=True) as client:
            counts = {"flow": client.read_flow_run(flow_run_id).run_count}
            for task_run in client.read_task_runs(flow_run_filter=only_run):
                counts[task_run.name] = task_run.run_count
        return counts

    return count
