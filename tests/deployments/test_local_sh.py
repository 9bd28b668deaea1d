"""deployments/local.sh and deployments/local.mk: argument checks, then a real up/down cycle."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from loopback import free_loopback_port
from prefect_harness import PREFECT_BIN, PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "deployments" / "local.sh"
COMMANDS = ("up", "down", "status", "server-start", "server-stop", "pool", "deploy")


def _local_sh(
    *args: str, env: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "S2SR_"))}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _settings(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "S2SR_STORAGE": str(tmp_path / "storage"),
        "S2SR_PREFECT_PORT": str(free_loopback_port()),
        "S2SR_PREFECT_UI": "false",
        "S2SR_START_TIMEOUT": "240",
        **extra,
    }


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = _local_sh("help", env=_settings(tmp_path))
    assert done.returncode == 0
    for command in (*COMMANDS, "worker-start", "worker-stop", "nightly"):
        assert f"  {command}" in done.stdout


def test_unknown_command_fails_with_the_usage(tmp_path: Path) -> None:
    done = _local_sh("start", env=_settings(tmp_path))
    assert done.returncode != 0
    assert "unknown command 'start'" in done.stderr
    assert "server-start" in done.stderr


def test_refuses_to_expose_the_server_without_basic_auth(tmp_path: Path) -> None:
    done = _local_sh("server-start", env=_settings(tmp_path, S2SR_PREFECT_HOST="0.0.0.0"))
    assert done.returncode != 0
    assert "PREFECT_SERVER_API_AUTH_STRING" in done.stderr
    assert not (tmp_path / "storage" / "prefect" / "run" / "server.pid").exists()


def test_remote_storage_needs_a_local_prefect_dir(tmp_path: Path) -> None:
    done = _local_sh("status", env=_settings(tmp_path, S2SR_STORAGE="s3://bucket/s2sr"))
    assert done.returncode != 0
    assert "S2SR_PREFECT_DIR" in done.stderr


def test_status_reports_a_stopped_stack(tmp_path: Path) -> None:
    done = _local_sh("status", env=_settings(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "server: stopped" in done.stdout
    assert "worker: stopped" in done.stdout


def test_make_targets_call_the_script() -> None:
    done = subprocess.run(
        ["make", "-n", "-f", "deployments/local.mk", "prefect-status", "prefect-down"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "deployments/local.sh status" in done.stdout
    assert "deployments/local.sh down" in done.stdout


@pytest.mark.slow
def test_up_then_down_leaves_no_process_behind(tmp_path: Path, probe_prefect_file: Path) -> None:
    env = _settings(tmp_path, S2SR_PREFECT_FILE=str(probe_prefect_file))
    state = tmp_path / "storage" / "prefect"
    port = int(env["S2SR_PREFECT_PORT"])
    try:
        up = _local_sh("up", env=env, timeout=420)
        assert up.returncode == 0, up.stdout + up.stderr
        server = psutil.Process(int((state / "run" / "server.pid").read_text()))
        worker = psutil.Process(int((state / "run" / "worker.pid").read_text()))
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in server.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", port)}

        again = _local_sh("server-start", env=env)
        assert "already running" in again.stdout

        # A flow run in flight when `down` comes must go too.
        client_env = {
            **os.environ,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_HOME": str(state),
        }
        subprocess.run(
            [str(PREFECT_BIN), "deployment", "run", "probe/probe", "--param", "sleep_s=300"],
            env=client_env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        flow_run = _wait_for_flow_run_process(worker)
        pids = [server.pid, worker.pid, flow_run.pid]
    finally:
        down = _local_sh("down", env=env, timeout=180)

    assert down.returncode == 0, down.stdout + down.stderr
    assert "Prefect worker: stopped" in down.stdout
    assert "Prefect server: stopped" in down.stdout
    assert [pid for pid in pids if _alive(pid)] == []
    assert _processes_using(state) == []
    assert not list((state / "run").glob("*.pid"))


def _wait_for_flow_run_process(worker: psutil.Process, timeout: float = 120.0) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in worker.children(recursive=True):
            if "-m prefect." in " ".join(child.cmdline()):
                return child
        time.sleep(0.5)
    raise AssertionError("the worker started no flow-run process")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _processes_using(state: Path) -> list[int]:
    """PIDs of live processes whose PREFECT_HOME is this stack's state directory."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("PREFECT_HOME") == str(
                state
            ):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_the_nightly_retrain_is_off_until_turned_on_and_stays_as_set(tmp_path: Path) -> None:
    """Deployed paused (a fresh install does not retrain at 02:00 by itself); ``nightly on`` is
    remembered by a later ``deploy``, and so is ``nightly off``. Broken by hand once:
    ``active: true`` in prefect.yaml fails the first check."""
    env = _settings(tmp_path)
    state = tmp_path / "storage" / "prefect"
    client_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_API_URL": f"http://127.0.0.1:{env['S2SR_PREFECT_PORT']}/api",
        "PREFECT_HOME": str(state),
    }

    def active() -> bool:
        code = (
            "from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as client:\n"
            "    d = client.read_deployment_by_name('retrain-srgan/retrain-nightly')\n"
            "    print(all(s.active for s in d.schedules))\n"
        )
        done = subprocess.run(
            [str(PREFECT_BIN.with_name("python")), "-c", code],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip() == "True"

    try:
        for command in ("server-start", "pool", "deploy"):
            done = _local_sh(command, env=env, timeout=420)
            assert done.returncode == 0, done.stdout + done.stderr
        assert not active()
        assert _local_sh("nightly", "on", env=env, timeout=120).returncode == 0
        assert active()
        assert _local_sh("deploy", env=env, timeout=420).returncode == 0
        assert active()  # remembered
        assert _local_sh("nightly", "off", env=env, timeout=120).returncode == 0
        assert _local_sh("deploy", env=env, timeout=420).returncode == 0
        assert not active()
    finally:
        _local_sh("down", env=env, timeout=180)
