"""``make demo``, the README's first command, end to end (with a short training).

The real target runs: it fetches the samples (cached), starts a Prefect server and worker on a
free loopback port with their state under a temporary storage root, deploys, runs
``tile-sentinel2`` and ``train-srgan`` through their deployments and prints the report. The
training is cut to :data:`ITERATIONS` (``S2SR_DEMO_ITERATIONS``); the stack is stopped afterwards.

Shown failing: a wrong deployment name in ``deployments/demo.sh`` (``train-srgan/train``), or a
``demo_report.py`` that reads another artifact key, fails the target and this test.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import free_loopback_port
from prefect_harness import PROJECT_ROOT

pytestmark = pytest.mark.slow

#: Training iterations of the test's demo (the demo's own default is 300).
ITERATIONS = 6


def _environment(storage: Path) -> dict[str, str]:
    # The stack's settings come from S2SR_* alone; no Prefect profile or server of the caller.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "S2SR_")) or k == "S2SR_CACHE"
    }
    return {
        **base,
        "S2SR_STORAGE": str(storage),
        "S2SR_PREFECT_PORT": str(free_loopback_port()),
        "S2SR_PREFECT_UI": "false",
        "S2SR_START_TIMEOUT": "240",
        "S2SR_DEMO_ITERATIONS": str(ITERATIONS),
        # the worker looks for scheduled runs every second instead of every ten
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _environment(tmp_path / "storage")
    try:
        yield env
    finally:
        subprocess.run(
            ["bash", str(PROJECT_ROOT / "deployments" / "local.sh"), "down"],
            env=env,
            capture_output=True,
            timeout=120,
        )


def test_make_demo_runs_the_pipeline_and_reports(demo_env: dict[str, str]) -> None:
    # -o: the virtualenv counts as up to date (this test runs inside it); the recipe is the real one
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "demo"],
        cwd=PROJECT_ROOT,
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    storage = Path(demo_env["S2SR_STORAGE"])
    run_dirs = list((storage / "runs").glob("demo-*"))
    assert len(run_dirs) == 1, run_dirs
    assert (run_dirs[0] / "checkpoints" / "last.ckpt").is_file()
    assert (storage / "patches" / "sentinel2.zarr").is_dir()

    report = done.stdout[done.stdout.index("==> results") :]
    assert f"run directory:   {storage}/runs/{run_dirs[0].name}" in report
    rows = re.findall(r"^(psnr|ssim|l1|sam|ergas)\s+(\S+)\s+(\S+)\s+(\S+)$", report, re.MULTILINE)
    assert {name for name, *_ in rows} == {"psnr", "ssim", "l1", "sam", "ergas"}, report
    for _, *values in rows:
        assert all(v != "nan" for v in values), report
