"""Training-speed benchmark: fresh worker processes, round-robin, summarised per workload.

Every run of every workload is a new ``python -m bench.worker`` process. Runs are interleaved
(run 1 of each workload, then run 2 of each, ...) so that a burst of load from other processes
on this shared machine hits all workloads alike and ratios measured in one invocation stay fair.

``opensr:`` workloads run ``python -m bench.reference_worker`` with the reference venv's
interpreter (:data:`REFERENCE_PYTHON`, ``make bench-reference-setup``) in the same round-robin,
so the ratio to opensr-srgan 0.4.3 is measured side by side. Rounds go on (up to
``max_runs``) until the ratio of every workload to its reference is known within
``target_spread``: the 90 % bootstrap interval of the median of the per-round ratios of each
run's fastest iteration (each round's two runs are neighbours in time, so they share the
machine's load).

Before timing, each base workload's step settings are measured the way a user's ``s2-srgan
tune`` would (:func:`srgan.step_trial.tune_step`, in a fresh process, into a tuning cache
private to the benchmark): our rows time what a tuned installation runs on this machine, and
each row records the settings it ran with.

Example::

    summaries = run_training([parse_spec("pretrain"), parse_spec("opensr:pretrain")], Settings())
"""

from __future__ import annotations

import io
import json
import os
import random
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
    #: Rounds are added until every ratio to the reference is known within this (relative
    #: half-width of the bootstrap interval), or until ``max_runs``.
    target_spread: float = 0.05
    max_runs: int = 15
    #: Measure each base workload's step settings first (see the module docstring).
    tune: bool = True


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


def _run_one(
    spec: WorkloadSpec, job: dict[str, Any], timeout_s: float, env: dict[str, str]
) -> dict[str, Any]:
    if spec.opensr is not None:
        return run_worker("bench.reference_worker", job, spec.env, timeout_s, REFERENCE_PYTHON)
    return run_worker("bench.worker", job, {**spec.env, **env}, timeout_s)


def ratio_interval(
    reference: list[float], ours: list[float], resamples: int = 2000
) -> dict[str, Any]:
    """Median of per-round ratios ``reference / ours`` with its 90 % bootstrap interval.

    Args:
        reference: Seconds per iteration of the reference, one per round.
        ours: Ours, one per round (same rounds, same order).

    Returns:
        ``median``, ``low``, ``high``, ``spread`` (half the interval over the median),
        ``min``/``max`` of the single-round ratios and ``pairs``.
    """
    ratios = [r / o for r, o in zip(reference, ours, strict=False)]
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples)
    )
    low, high = medians[int(0.05 * resamples)], medians[int(0.95 * resamples) - 1]
    median = statistics.median(ratios)
    return {
        "median": median,
        "low": low,
        "high": high,
        "spread": (high - low) / 2 / median,
        "min": min(ratios),
        "max": max(ratios),
        "pairs": len(ratios),
    }


def _pairs(specs: list[WorkloadSpec]) -> list[tuple[str, str]]:
    """(ours, reference) workload names measured side by side: every one of our workloads
    (``adversarial``, ``adversarial+bf16`` …) whose base has an ``opensr:`` row."""
    references = {s.base: s.name for s in specs if s.opensr is not None}
    return [
        (s.name, references[s.base]) for s in specs if s.opensr is None and s.base in references
    ]


def _per_run(results: list[dict[str, Any]]) -> list[float]:
    """Each run's fastest iteration: the load of other processes on a shared machine comes in
    bursts longer than an iteration and only ever slows one down, so the fastest iteration of
    a run is the least disturbed estimate of what the step costs (as ``timeit`` takes the
    minimum); the s/it column keeps the median."""
    return [min(r["seconds_per_iteration"]) for r in results]


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
        "step_settings": runs[0].get("step_settings"),
        "runs": runs,
    }
    return summary


def tune_bases(
    specs: list[WorkloadSpec], settings: Settings, env: dict[str, str], log: Any
) -> dict[str, Any]:
    """Measure the step settings of each base workload (fresh process each) into the cache
    that ``env`` points the workers to; returns each base's trial."""
    trials: dict[str, Any] = {}
    for spec in specs:
        if spec.opensr is not None or spec.baseline_code or spec.base in trials:
            continue
        # the first spec of a base (the plain one, usually): variants' own settings stay theirs
        job = {"tune": True, "overrides": spec.overrides, "threads": spec.threads}
        trial = run_worker("bench.worker", job, env, settings.timeout_s)
        trials[spec.base] = trial
        log(f"tuned {spec.base}: {trial['settings']} ({trial['seconds']:.0f} s)")
    return trials


def run_training(
    specs: list[WorkloadSpec], settings: Settings, log: Any = print
) -> list[dict[str, Any]]:
    """Time every workload, interleaved, for ``settings.runs`` rounds and then until every
    ratio to the reference is within ``settings.target_spread``; one summary per workload.

    Raises:
        BenchError: a worker failed or the baseline revision cannot be exported.
    """
    if any(s.opensr for s in specs) and not REFERENCE_PYTHON.exists():
        raise BenchError(
            f"opensr: workloads need the reference venv ({REFERENCE_PYTHON} is missing); "
            "run `make bench-reference-setup`"
        )
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
    pairs = _pairs(specs)
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-baseline-") as tmp:
        tuning_env = {"S2SR_TUNING": str(Path(tmp) / "tuning.json")}
        trials = tune_bases(specs, settings, tuning_env, log) if settings.tune else {}
        baseline = None
        if any(s.baseline_code for s in specs):
            baseline = export_revision(settings.baseline_revision, Path(tmp) / "baseline")
        rounds, index = max(settings.runs, 1), 0
        while index < rounds:
            for spec in specs:
                job = {**_job(spec, settings, baseline), "profile_top": None}
                result = _run_one(spec, job, settings.timeout_s, tuning_env)
                runs[spec.name].append(result)
                per_it = statistics.median(result["seconds_per_iteration"])
                log(
                    f"run {index + 1} {spec.name}: {per_it:.3f} s/it "
                    f"(other processes used {result['load']['foreign_cpus']:.2f} CPUs)"
                )
            index += 1
            if index == rounds and index < settings.max_runs and pairs:
                spreads = {
                    ours: ratio_interval(_per_run(runs[ref]), _per_run(runs[ours]))["spread"]
                    for ours, ref in pairs
                }
                wide = {k: round(v, 3) for k, v in spreads.items() if v > settings.target_spread}
                if wide:
                    log(f"ratio spread above ±{settings.target_spread:.0%}: {wide}; one more round")
                    rounds += 1
        summaries = [summarise(spec, runs[spec.name]) for spec in specs]
        references = dict(pairs)
        for summary, spec in zip(summaries, specs, strict=True):
            reference = references.get(spec.name)
            if reference is not None:
                summary["ratio_to_reference"] = ratio_interval(
                    _per_run(runs[reference]), _per_run(runs[spec.name])
                )
            if spec.base in trials and spec.opensr is None:
                summary["tuning_trial"] = trials[spec.base]
        if settings.profile_top:
            # an extra run: the profiler's overhead must not reach the timed runs
            for spec, summary in zip(specs, summaries, strict=True):
                if spec.opensr is not None:
                    log(f"no profile for {spec.name}: the reference worker does not profile")
                    continue
                job = {**_job(spec, settings, baseline), "count_flops": False}
                profiled = run_worker(
                    "bench.worker", job, {**spec.env, **tuning_env}, settings.timeout_s
                )
                summary["profile"] = profiled["profile"]
                summary["profile_seconds_per_iteration"] = statistics.median(
                    profiled["seconds_per_iteration"]
                )
                log(f"profiled {spec.name}")
    return summaries
