"""``train-srgan`` under retries and bad input, in-process against a real Prefect server: one
progress artifact per flow run, input errors logged as one line, the pinned store version in
the report, a finished run that is not trained again.

Broken by hand once each: creating a new progress artifact per attempt fails
``test_a_retried_run_keeps_one_progress_artifact``; without the engine log filter
``test_an_input_error_is_logged_as_one_line`` finds tracebacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from training_faults import flaky_fit

from flows.train import train_srgan
from tasks.progress import PROGRESS_KEY

pytestmark = pytest.mark.usefixtures("prefect_api")


def _artifacts_with_key(flow_run_id: UUID, key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    only = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])
    )
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=only)


def test_a_retried_run_keeps_one_progress_artifact(
    patch_store: Path,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny: Any,
    iterations: int,
    attempts: Any,
    read_artifacts: Any,
) -> None:
    flaky_fit(monkeypatch, fail_at=7)
    state = train_srgan.with_options(retry_delay_seconds=0)(
        store=str(patch_store),
        overrides=tiny(),
        run_key="progress",
        max_iterations=iterations,
        return_state=True,
    )

    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    assert attempts(flow_run_id)["flow"] == 2
    progress = _artifacts_with_key(flow_run_id, PROGRESS_KEY)
    assert [a.data for a in progress] == [100.0]
    # the report names the store version the run trained on, in its text and its config
    pinned = state.result().fit.store_version
    report = read_artifacts(flow_run_id)["srgan-training-report"].data
    config = json.loads(report.split("```json", 1)[1].split("```", 1)[0])
    assert pinned and config["data"]["version"] == pinned
    assert f"(version `{pinned}`)" in report


def test_an_input_error_is_logged_as_one_line(
    storage: Path, read_logs: Any, tiny: Any, attempts: Any
) -> None:
    # raised in the training task (a missing store), reported by the task and by the flow
    state = train_srgan(
        store=str(storage / "nowhere.zarr"), overrides=tiny(), max_iterations=4, return_state=True
    )

    assert state.is_failed(), state
    flow_run_id = state.state_details.flow_run_id
    assert set(attempts(flow_run_id).values()) == {1}
    logs = read_logs(flow_run_id)
    failures = [m for m in logs if "nowhere.zarr" in m]
    assert len(failures) >= 2, logs  # the task run's and the flow run's
    assert all("Traceback" not in m and "\n" not in m for m in failures), failures
    assert not any("Traceback" in m for m in logs)


def test_a_finished_run_is_not_trained_again(
    patch_store: Path, storage: Path, tiny: Any, iterations: int, read_logs: Any
) -> None:
    first = train_srgan(
        store=str(patch_store), overrides=tiny(), run_key="done", max_iterations=iterations
    )
    run_dir = storage / "runs" / "done"
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    state = train_srgan(
        store=str(patch_store),
        overrides=tiny(),
        run_key="done",
        max_iterations=iterations,
        return_state=True,
    )

    assert state.is_completed(), state
    again = state.result().fit
    assert again.already_finished and again.iteration == first.fit.iteration
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files
    logs = read_logs(state.state_details.flow_run_id)
    assert any("is finished" in m for m in logs), logs
