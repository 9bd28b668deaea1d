"""Run ``tile-sentinel2`` in-process and read back what the Prefect server recorded of it.

Shared by the tile-flow test modules (``tests/flows/test_tile_flow*.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import pytest

from datasets.split_policy import SplitPolicy
from flows.tile import tile_sentinel2

PATCH = 32
SPLIT = SplitPolicy(mode="block", block_size=64, val_fraction=0.3)


class Run(NamedTuple):
    storage: Path
    scenes: list[str]
    state: Any


def tile(storage: Path, **params: Any) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S2SR_STORAGE", str(storage))
        return tile_sentinel2(**{"patch_size": PATCH, "split": SPLIT, **params}, return_state=True)


def flow_run_ids(state: Any) -> list[UUID]:
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


def artifacts(state: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids(state)))
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_artifacts(artifact_filter=runs)}


def task_runs(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    runs = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids(state)))
    with get_client(sync_client=True) as client:
        return list(client.read_task_runs(task_run_filter=runs))


def table(state: Any) -> dict[str, dict[str, Any]]:
    """The per-scene rows of the scenes table (without its whole-store row)."""
    rows = json.loads(artifacts(state)["tile-sentinel2-scenes"].data)
    return {row["scene"]: row for row in rows if row["scene"] != "(whole store)"}
