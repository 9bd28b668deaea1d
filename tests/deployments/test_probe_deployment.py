"""End to end on this machine: server, pool, deploy, worker, `prefect deployment run`, artifact.

The probe flow stands in for the real flows: it is deployed with the real prefect.yaml's build,
pull and work-pool blocks, so a Completed run proves the working-directory mechanics too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from uuid import UUID

import psutil
import pytest
from prefect_harness import PROJECT_ROOT, LocalPrefect, local_prefect, local_prefect_fixture

pytestmark = pytest.mark.slow

prefect_stack = local_prefect_fixture(scope="module")


@pytest.fixture(scope="module")
def probe_stack(prefect_stack: LocalPrefect, probe_prefect_file: Path) -> LocalPrefect:
    """The module's stack with ``probe/probe`` deployed and one worker online."""
    started = time.monotonic()
    prefect_stack.deploy(probe_prefect_file)
    prefect_stack.start_worker()
    print(f"deploy + worker start: {time.monotonic() - started:.1f} s")
    return prefect_stack


def test_probe_deployment_runs_and_reports_an_artifact(probe_stack: LocalPrefect) -> None:
    started = time.monotonic()
    flow_run = probe_stack.run_deployment_cli("probe/probe", {"message": "from-test"})

    assert flow_run.state is not None
    assert flow_run.state.is_completed(), probe_stack.log_tail("worker-")
    (artifact,) = probe_stack.read_artifacts(flow_run.id)
    assert artifact.key == "probe-report"
    assert artifact.type == "markdown"
    assert isinstance(artifact.data, str)
    assert "- message: `from-test`" in artifact.data
    # The pull step moved the flow run from the worker's temp dir to the project root.
    assert f"- cwd: `{PROJECT_ROOT}`" in artifact.data
    assert f"- python_prefix: `{sys.prefix}`" in artifact.data
    print(f"deployment run --watch + artifact read: {time.monotonic() - started:.1f} s")


def test_client_run_passes_parameters_and_defaults(probe_stack: LocalPrefect) -> None:
    flow_run = probe_stack.run_deployment("probe/probe", {"sleep_s": 0.1}, timeout=120)

    assert flow_run.state is not None
    assert flow_run.state.is_completed(), probe_stack.log_tail("worker-")
    assert flow_run.parameters == {"message": "from-yaml", "sleep_s": 0.1}
    (artifact,) = probe_stack.read_artifacts(flow_run.id)
    assert isinstance(artifact.data, str)
    assert "- message: `from-yaml`" in artifact.data


def test_server_listens_on_loopback_only(prefect_stack: LocalPrefect) -> None:
    server = psutil.Process(prefect_stack.server_pid)
    listening = [c for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "the server process has no listening socket"
    assert {(c.laddr.ip, c.laddr.port) for c in listening} == {("127.0.0.1", prefect_stack.port)}


def test_teardown_reaps_a_running_flow_run_when_the_test_fails(
    tmp_path: Path, probe_prefect_file: Path
) -> None:
    pids: list[int] = []
    with (
        pytest.raises(RuntimeError, match="simulated test failure"),
        local_prefect(tmp_path) as stack,
    ):
        stack.deploy(probe_prefect_file)
        stack.start_worker()
        with stack.client() as client:
            deployment = client.read_deployment_by_name("probe/probe")
            run = client.create_flow_run_from_deployment(deployment.id, parameters={"sleep_s": 300})
        _wait_until_running(stack, run.id)
        pids = [p.pid for p in stack.processes()]
        raise RuntimeError("simulated test failure")

    # Server, worker and the flow-run process it spawned in its own session.
    assert len(pids) >= 3
    survivors = [pid for pid in pids if _alive(pid)]
    assert survivors == []


def _wait_until_running(stack: LocalPrefect, flow_run_id: UUID, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.client() as client:
            state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_running():
            return
        time.sleep(0.5)
    raise AssertionError(f"probe never reached Running:\n{stack.log_tail('worker-')}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
