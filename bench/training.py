"""Training-speed benchmark: fresh worker processes, round-robin, summarised per workload.

Every run of every workload is a new ``python -m bench.worker`` process. Runs are interleaved
(run 1 of each workload, then run 2 of each, ...) so that a burst of load from other processes
on this shared machine hits all workloads alike and ratios measured in one invocation stay fair.

``opensr:`` workloads run ``python -m bench.reference_worker`` with the reference venv's
interpreter (:data:`REFERENCE_PYTHON`, ``make bench-reference-setup``) in the same round-robin,
so the ratio to opensr-srgan 0.4.3 is measured side by side.

Example::

    summaries = run_training([parse_spec("pretrain"), parse_spec("opensr:pretrain")], Settings())
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.system import LoadProbe
from bench.workloads import BATCH_SIZE, HR_SIZE, WorkloadSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The last revision before the issue #5 training-step optimisations (the ``+before`` code).
BASELINE_REVISION = "75301b0"
#: The venv of the reference implementation, opensr-srgan 0.4.3 (``make bench-reference-setup``).
REFERENCE_PYTHON = REPO_ROOT / "bench" / ".venv-opensr" / "bin" / "python"


class BenchError(RuntimeError):
    """A benchmark worker failed; the message carries the tail of its output."""


@dataclass(frozen=True)
class Settings:
    """How each workload is timed (the issue #5 protocol by default)."""

    runs: int = 3
    warmup: int = 3
    iterations: int = 20
    baseline_revision: str = BASELINE_REVISION
    profile_top: int | None = None
    timeout_s: float = 3600.0


def export_revision(revision: str, into: Path) -> Path:
    """Write the ``srgan`` package of ``revision`` under ``into`` (read-only git, no checkout).

    Raises:
        BenchError: ``revision`` is unknown to git.
    """
    proc = subprocess.run(
        ["git", "archive", "--format=tar", revision, "srgan"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"cannot export srgan at revision {revision!r}: {proc.stderr.decode().strip()}; "
            "pass an existing commit with --baseline-revision"
        )
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


def run_worker(
    module: str,
    job: dict[str, Any],
    env: dict[str, str],
    timeout_s: float,
    python: str | Path = sys.executable,
) -> dict:
    """Run ``<python> -m <module> JOB RESULT`` in a fresh process; returns its result and load.

    Raises:
        BenchError: the worker exited non-zero or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-job-") as tmp:
        job_path, result_path = Path(tmp, "job.json"), Path(tmp, "result.json")
        job_path.write_text(json.dumps(job))
        probe = LoadProbe.start()
        try:
            proc = subprocess.run(
                [str(python), "-m", module, str(job_path), str(result_path)],
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise BenchError(f"{module} ran past {timeout_s:.0f} s; lower --iterations") from err
        load = probe.stop()
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise BenchError(f"{module} failed (exit {proc.returncode}):\n{tail}")
        return {**json.loads(result_path.read_text()), "load": load}


def _job(spec: WorkloadSpec, settings: Settings, baseline_root: Path | None) -> dict[str, Any]:
    if spec.opensr is not None:
        return {
            "workload": spec.opensr,
            "threads": spec.threads,
            "warmup": settings.warmup,
            "iterations": settings.iterations,
        }
    return {
        "overrides": spec.overrides,
        "threads": spec.threads,
        "warmup": settings.warmup,
        "iterations": settings.iterations,
        "hr_size": HR_SIZE,
        "srgan_root": str(baseline_root) if spec.baseline_code and baseline_root else None,
        "count_flops": not spec.overrides.get("trainer", {}).get("compile", False),
        "profile_top": settings.profile_top,
        "patches": list(spec.patches),
    }


def _run_one(spec: WorkloadSpec, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    if spec.opensr is not None:
        return run_worker("bench.reference_worker", job, spec.env, timeout_s, REFERENCE_PYTHON)
    return run_worker("bench.worker", job, spec.env, timeout_s)


def summarise(spec: WorkloadSpec, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per run the median interval; over runs the median and range, plus FLOPs and RSS."""
    per_run = [statistics.median(r["seconds_per_iteration"]) for r in runs]
    median = statistics.median(per_run)
    flops = next((r["flops_per_iteration"] for r in runs if r.get("flops_per_iteration")), None)
    summary: dict[str, Any] = {
        "workload": spec.name,
        "base": spec.base,
        "implementation": f"opensr-srgan {runs[0]['opensr_srgan']}" if spec.opensr else "srgan",
        "seconds_per_iteration": median,
        "seconds_per_iteration_range": [min(per_run), max(per_run)],
        "seconds_per_iteration_runs": per_run,
        "samples_per_second": BATCH_SIZE / median,
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "flops_per_iteration": flops,
        "achieved_flops": flops / median if flops else None,
        "foreign_cpus": statistics.median(r["load"]["foreign_cpus"] for r in runs),
        "page_faults_per_iteration": statistics.median(
            r["page_faults_per_iteration"] for r in runs
        ),
        "cpu_seconds_per_iteration": statistics.median(
            r["cpu_seconds_per_iteration"] for r in runs
        ),
        "threads": runs[0]["threads"],
        "precision": runs[0]["precision"],
        "srgan_path": runs[0]["srgan_path"],
        "runs": runs,
    }
    return summary


def run_training(
    specs: list[WorkloadSpec], settings: Settings, log: Any = print
) -> list[dict[str, Any]]:
    """Time every workload ``settings.runs`` times, interleaved; returns one summary each.

    Raises:
        BenchError: a worker failed or the baseline revision cannot be exported.
    """
    if any(s.opensr for s in specs) and not REFERENCE_PYTHON.exists():
        raise BenchError(
            f"opensr: workloads need the reference venv ({REFERENCE_PYTHON} is missing); "
            "run `make bench-reference-setup`"
        )
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-baseline-") as tmp:
        baseline = None
        if any(s.baseline_code for s in specs):
            baseline = export_revision(settings.baseline_revision, Path(tmp))
        for index in range(settings.runs):
            for spec in specs:
                job = {**_job(spec, settings, baseline), "profile_top": None}
                result = _run_one(spec, job, settings.timeout_s)
                runs[spec.name].append(result)
                per_it = statistics.median(result["seconds_per_iteration"])
                log(
                    f"run {index + 1}/{settings.runs} {spec.name}: {per_it:.3f} s/it "
                    f"(other processes used {result['load']['foreign_cpus']:.2f} CPUs)"
                )
        summaries = [summarise(spec, runs[spec.name]) for spec in specs]
        if settings.profile_top:
            # an extra run: the profiler's overhead must not reach the timed runs
            for spec, summary in zip(specs, summaries, strict=True):
                if spec.opensr is not None:
                    log(f"no profile for {spec.name}: the reference worker does not profile")
                    continue
                job = {**_job(spec, settings, baseline), "count_flops": False}
                profiled = run_worker("bench.worker", job, spec.env, settings.timeout_s)
                summary["profile"] = profiled["profile"]
                summary["profile_seconds_per_iteration"] = statistics.median(
                    profiled["seconds_per_iteration"]
                )
                log(f"profiled {spec.name}")
    return summaries
