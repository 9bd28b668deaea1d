"""A throw-away local Prefect 3 stack for end-to-end tests: server, pool, workers, deployments.

:func:`local_prefect` starts ``prefect server start`` on a free 127.0.0.1 port with its own
``PREFECT_HOME`` and SQLite database under a temp directory, creates the ``srgan-local`` process
pool and yields a :class:`LocalPrefect`. Leaving the block stops every worker, every flow-run
process they started and the server (SIGTERM, then SIGKILL) and raises :class:`StrayProcessError`
if anything survives, also when the test body failed.

Example::

    from prefect_harness import local_prefect

    def test_train(tmp_path):
        with local_prefect(tmp_path) as stack:
            stack.deploy(PROJECT_ROOT / "deployments" / "prefect.yaml")
            stack.start_worker()
            run = stack.run_deployment_cli("train-srgan/train-srgan", {"max_iterations": 20})
            assert run.state is not None and run.state.is_completed(), stack.log_tail("worker-")
            artifacts = stack.read_artifacts(run.id)

A module-wide stack (one server start, ~15-25 s, shared by the tests of a module)::

    prefect_stack = local_prefect_fixture(scope="module")
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from uuid import UUID

import httpx
import psutil
import pytest
from loopback import LOOPBACK, free_loopback_port
from process_tree import alive, process_tree, stop_process_trees

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import Artifact, FlowRun

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POOL_NAME = "srgan-local"
#: The test process's own virtualenv: the project's, so flow runs import the project.
PREFECT_BIN = Path(sys.executable).with_name("prefect")
FixtureScope = Literal["session", "package", "module", "class", "function"]
_FLOW_RUN_ID = re.compile(r"UUID: ([0-9a-f-]{36})")


class PrefectHarnessError(RuntimeError):
    """The local Prefect stack failed; the message carries the relevant log tail."""


class StrayProcessError(PrefectHarnessError):
    """Processes of the stack survived teardown (listed by PID and command line)."""


class LocalPrefect:
    """Handle on a running local stack; create it with :func:`local_prefect`.

    Attributes:
        root: Temp directory holding ``home/`` (PREFECT_HOME, SQLite), ``logs/`` and ``storage/``.
        port: The server's TCP port on 127.0.0.1.
        api_url: ``http://127.0.0.1:<port>/api``.
        env: Environment for subprocesses (CLI, worker, flow runs): the caller's minus its
            ``PREFECT_*`` settings, plus this stack's API URL, home, database and
            ``S2SR_STORAGE=<root>/storage``.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.api_url = f"http://{LOOPBACK}:{port}/api"
        self.home = root / "home"
        self.logs = root / "logs"
        for folder in (self.home, self.logs, root / "storage"):
            folder.mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env: dict[str, str] = {
            **inherited,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home}/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_LOGGING_COLORS": "false",
            "PREFECT_CLI_COLORS": "false",
            # A worker polls every 10 s by default; tests should not wait for it.
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PATH": f"{PREFECT_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",
            "S2SR_PROJECT_ROOT": str(PROJECT_ROOT),
            "S2SR_STORAGE": str(root / "storage"),
        }
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: list[IO[bytes]] = []

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        self._log_files.append(log)
        proc = subprocess.Popen(
            [str(PREFECT_BIN), *args],
            # Not the checkout: flow runs must find it through the deployments' pull step.
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: teardown signals the group, never the pytest process.
            start_new_session=True,
        )
        self._processes[name] = proc
        return proc

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        proc = self._processes[name]
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise PrefectHarnessError(
                    f"{name} exited with code {proc.returncode} while starting:\n"
                    + self.log_tail(name)
                )
            if time.monotonic() > deadline:
                raise PrefectHarnessError(
                    f"{name} not ready after {timeout:.0f} s (slow machine? raise the timeout):\n"
                    + self.log_tail(name)
                )
            time.sleep(0.5)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_server(self, timeout: float = 180.0) -> None:
        """Start ``prefect server start`` on 127.0.0.1 and wait for ``/api/health``.

        Raises:
            PrefectHarnessError: The server exited or did not answer within ``timeout`` s.
        """
        args = ["server", "start", "--host", LOOPBACK, "--port", str(self.port), "--no-ui"]
        self._spawn("server", [*args, "--analytics-off"])
        self._wait("server", self._healthy, timeout)

    @property
    def server_pid(self) -> int:
        """PID of the ``prefect server start`` process."""
        return self._processes["server"].pid

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """Yield a synchronous Prefect client bound to this stack, in this process."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # get_client() reads the settings on entry, inside the temporary override.
        with (
            temporary_settings(updates={PREFECT_API_URL: self.api_url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def create_pool(self, name: str = POOL_NAME) -> None:
        """Create the process work pool ``name`` with the process worker's default template."""
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
        with self.client() as client:
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )

    def run(
        self, *args: str, timeout: float = 180.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``prefect <args>`` from the project root against this stack.

        Args:
            *args: CLI arguments, e.g. ``"deployment", "ls"``.
            timeout: Seconds before the command is killed.
            check: Raise when the exit code is not 0.

        Returns:
            The finished process with text ``stdout`` (stderr merged into it).

        Raises:
            PrefectHarnessError: ``check`` is set and the command failed.
        """
        done = subprocess.run(
            [str(PREFECT_BIN), *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise PrefectHarnessError(
                f"`prefect {' '.join(args)}` exited with {done.returncode}:\n{done.stdout[-4000:]}"
            )
        return done

    def deploy(self, prefect_file: Path, *names: str) -> None:
        """``prefect deploy`` every deployment of ``prefect_file`` (or only ``names``).

        Runs from the project root, so relative entrypoints and the build step that records the
        flow runs' working directory resolve against the checkout.
        """
        selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
        self.run("--no-prompt", "deploy", *selection, "--prefect-file", str(prefect_file))

    def start_worker(self, pool: str = POOL_NAME, timeout: float = 120.0) -> int:
        """Start a process worker on ``pool`` and wait until the server lists it online.

        Returns:
            The worker's PID.

        Raises:
            PrefectHarnessError: The worker exited or was not online within ``timeout`` s.
        """
        from prefect.client.schemas.objects import WorkerStatus

        name = f"worker-{len(self._processes)}"
        proc = self._spawn(name, ["worker", "start", "--pool", pool, "--name", name])

        def online() -> bool:
            with self.client() as client:
                workers = client.read_workers_for_work_pool(pool)
            return any(w.name == name and w.status == WorkerStatus.ONLINE for w in workers)

        self._wait(name, online, timeout)
        return proc.pid

    def wait_for_flow_run(self, flow_run_id: UUID, timeout: float = 300.0) -> FlowRun:
        """Poll a flow run until its state is final.

        Returns:
            The flow run; its ``.state`` is final (Completed, Failed, Crashed, Cancelled).

        Raises:
            PrefectHarnessError: Not final within ``timeout`` s (the worker log tail included).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.client() as client:
                flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            if time.monotonic() > deadline:
                raise PrefectHarnessError(
                    f"flow run {flow_run_id} still {flow_run.state!r} after {timeout:.0f} s:\n"
                    + self.log_tail("worker-")
                )
            time.sleep(1.0)

    def run_deployment(
        self, name: str, parameters: Mapping[str, Any] | None = None, timeout: float = 300.0
    ) -> FlowRun:
        """Create a run of deployment ``FLOW/DEPLOYMENT`` through the client and wait for it.

        Returns:
            The finished ``FlowRun`` (see :meth:`wait_for_flow_run`).
        """
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            flow_run = client.create_flow_run_from_deployment(
                deployment.id, parameters=dict(parameters or {})
            )
        return self.wait_for_flow_run(flow_run.id, timeout)

    def run_deployment_cli(
        self, name: str, parameters: Mapping[str, Any] | None = None, timeout: float = 300.0
    ) -> FlowRun:
        """``prefect deployment run NAME --param k=<json> --watch``, as a user types it.

        Returns:
            The finished ``FlowRun``, whatever its final state (the CLI exits 1 unless it
            completed; callers assert on ``.state``).

        Raises:
            PrefectHarnessError: The CLI printed no flow-run id, or the run is not final.
        """
        params = [
            a for k, v in (parameters or {}).items() for a in ("--param", f"{k}={json.dumps(v)}")
        ]
        args = ["deployment", "run", name, *params, "--watch", "--watch-timeout", f"{timeout:.0f}"]
        done = self.run(*args, timeout=timeout + 60, check=False)
        match = _FLOW_RUN_ID.search(done.stdout)
        if match is None:
            raise PrefectHarnessError(f"`prefect {' '.join(args)}` created no run:\n{done.stdout}")
        return self.wait_for_flow_run(UUID(match.group(1)), timeout=30)

    def read_artifacts(self, flow_run_id: UUID) -> list[Artifact]:
        """Return the artifacts of a flow run (markdown, table, link, ...)."""
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        only_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        with self.client() as client:
            return list(client.read_artifacts(artifact_filter=only_run))

    def log_tail(self, prefix: str, lines: int = 60) -> str:
        """Return the last ``lines`` lines of the logs whose name starts with ``prefix``."""
        chunks = []
        for log in sorted(self.logs.glob(f"{prefix}*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(chunks) or f"(no {prefix}* log in {self.logs})"

    def processes(self) -> list[psutil.Process]:
        """Return the live processes of the stack: server, workers and their descendants."""
        return [p for proc in self._processes.values() for p in process_tree(proc.pid) if alive(p)]

    def close(self, timeout: float = 20.0) -> None:
        """Stop workers (with their flow runs) first, then the server; verify nothing survives.

        Raises:
            StrayProcessError: A process of the stack outlived SIGTERM and SIGKILL.
        """
        workers = [n for n in self._processes if n != "server"]
        stray: list[psutil.Process] = []
        for names in (workers, ["server"]):
            stray += stop_process_trees(
                [self._processes[n] for n in names if n in self._processes], timeout
            )
        for log in self._log_files:
            log.close()
        if stray:
            listing = "\n".join(f"{p.pid}: {' '.join(p.cmdline())}" for p in stray if alive(p))
            raise StrayProcessError(f"processes survived teardown:\n{listing}")


@contextmanager
def local_prefect(tmp_path: Path, *, start_timeout: float = 180.0) -> Iterator[LocalPrefect]:
    """Run a local Prefect server with the ``srgan-local`` pool for the duration of the block.

    Args:
        tmp_path: Empty directory for the stack's home, database, logs and storage root.
        start_timeout: Seconds to wait for the server's health endpoint.

    Yields:
        The running stack; start workers and deploy through it.

    Raises:
        PrefectHarnessError: The server did not start (its log tail is in the message).
        StrayProcessError: On exit, a process of the stack survived teardown.
    """
    stack = LocalPrefect(tmp_path, free_loopback_port())
    try:
        stack.start_server(start_timeout)
        stack.create_pool()
        yield stack
    finally:
        stack.close()


def local_prefect_fixture(scope: FixtureScope = "module") -> Any:
    """Return a pytest fixture yielding a :class:`LocalPrefect` shared within ``scope``.

    Example::

        prefect_stack = local_prefect_fixture(scope="module")

        def test_x(prefect_stack): ...
    """

    @pytest.fixture(scope=scope)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefect]:
        with local_prefect(tmp_path_factory.mktemp("prefect")) as stack:
            yield stack

    return fixture
