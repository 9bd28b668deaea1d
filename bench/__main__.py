"""``python -m bench [WORKLOAD ...]``: run benchmarks, write JSON and the RESULTS.md tables.

Without arguments (``make bench``) it times the four issue #5 reference training workloads,
the same four on opensr-srgan 0.4.3 (``opensr:BASE``, if ``make bench-reference-setup`` made its
venv) and the machine's compute peaks. Arguments are training workload specs (``BASE[+MOD...]``
or ``opensr:BASE``, see :mod:`bench.workloads`) or the suites ``datapath`` (Zarr loader vs
training consumption), ``quality`` (float32 vs bf16-mixed short training against bicubic),
``equivalence`` (do the speed switches change the numbers?) and ``overhead`` (logging, toggling,
checks per call).

Example::

    python -m bench pretrain pretrain+before --name step-before-after --profile 15
    python -m bench adversarial opensr:adversarial --name vs-opensr
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import report, stamp
from bench.system import machine
from bench.training import (
    BASELINE_REVISION,
    REFERENCE_PYTHON,
    Settings,
    run_training,
    run_worker,
)
from bench.workloads import BASES, OPENSR_PREFIX, VARIANTS, WorkloadError, parse_spec

REFERENCE_WORKLOADS = ("pretrain", "adversarial", "small-pretrain", "small-adversarial")


def default_workloads() -> list[str]:
    """The reference workloads, and the same on opensr-srgan when its venv exists."""
    if REFERENCE_PYTHON.exists():
        return [*REFERENCE_WORKLOADS, *(f"{OPENSR_PREFIX}{w}" for w in REFERENCE_WORKLOADS)]
    _log(
        f"{REFERENCE_PYTHON} missing: no side-by-side opensr rows, the ratio column falls back "
        "to the issue's figures (other machine); `make bench-reference-setup` adds them"
    )
    return list(REFERENCE_WORKLOADS)


def _suite_datapath(args: argparse.Namespace) -> None:
    from bench.datapath import run_datapath

    run_datapath(command=_command(), log=_log)


def _suite_quality(args: argparse.Namespace) -> None:
    from bench.quality import run_quality

    run_quality(command=_command(), log=_log)


def _suite_equivalence(args: argparse.Namespace) -> None:
    from bench.equivalence import run_equivalence

    run_equivalence(command=_command(), log=_log)


def _suite_overhead(args: argparse.Namespace) -> None:
    from bench.overhead import run_overhead

    run_overhead(command=_command(), log=_log)


#: Benchmarks other than the training workloads, by the name given on the command line.
SUITES: dict[str, Callable[[argparse.Namespace], None]] = {
    "datapath": _suite_datapath,
    "quality": _suite_quality,
    "equivalence": _suite_equivalence,
    "overhead": _suite_overhead,
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _command() -> str:
    return shlex.join(["python", "-m", "bench", *sys.argv[1:]])


def measure_peaks(threads: int) -> dict[str, Any]:
    """Compute peaks from a fresh process (see :mod:`bench.peaks`)."""
    result = run_worker("bench.peaks", {"threads": threads}, {}, 1800)
    return {k: v for k, v in result.items() if k != "load"} | {"load": result["load"]}


def _best_peaks(probes: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in probes[0].items() if isinstance(v, float)]
    return {"threads": probes[0]["threads"], **{k: max(p[k] for p in probes) for k in keys}}


def run_training_suite(specs: list[str], args: argparse.Namespace) -> None:
    """Time ``specs``, probing peaks before and after; write JSON and the RESULTS.md block."""
    parsed = [parse_spec(s) for s in specs]
    settings = Settings(
        runs=args.runs,
        warmup=args.warmup,
        iterations=args.iterations,
        baseline_revision=args.baseline_revision,
        profile_top=args.profile,
        target_spread=args.target_spread,
        max_runs=args.max_runs,
        tune=not args.no_tune,
    )
    threads = parsed[0].threads
    load_before = os.getloadavg()[0]
    probes = [] if args.no_peaks else [measure_peaks(threads)]
    workloads = run_training(parsed, settings, log=_log)
    if not args.no_peaks:
        probes.append(measure_peaks(threads))
    payload = {
        "command": _command(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "machine": machine(),
        "settings": settings.__dict__,
        "peaks": _best_peaks(probes) if probes else None,
        "peak_probes": probes,
        "workloads": workloads,
    }
    name = args.name or "training"
    out = Path(args.output) if args.output else None
    path = report.write_json(name, payload, out / "results" if out else report.RESULTS_DIR)
    if not args.no_markdown:
        md = out / "RESULTS.md" if out else report.RESULTS_MD
        report.update_results_md(name, report.render_training(payload), md, args.commit)
    _log(f"wrote {path}")
    print(report.training_table(payload))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the requested benchmarks."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"bases: {', '.join(BASES)}\nvariants: {', '.join(VARIANTS)}\n"
        f"reference: {OPENSR_PREFIX}BASE (opensr-srgan 0.4.3; make bench-reference-setup)\n"
        f"suites: {', '.join(SUITES)}",
    )
    parser.add_argument("workloads", nargs="*", help="workload specs or suite names")
    parser.add_argument("--name", help="result set name (bench/results/NAME.json)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per workload (min)")
    parser.add_argument(
        "--max-runs", type=int, default=15, help="rounds at most while a ratio's spread is wide"
    )
    parser.add_argument(
        "--target-spread",
        type=float,
        default=0.05,
        help="add rounds until each ratio to the reference is known within ± this",
    )
    parser.add_argument(
        "--no-tune", action="store_true", help="time the built-in step settings, untuned"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed first iterations")
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations per run")
    parser.add_argument("--profile", type=int, metavar="N", help="add a profiled run; top N ops")
    parser.add_argument("--no-peaks", action="store_true", help="skip the peak probes")
    parser.add_argument("--no-markdown", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument(
        "--output", metavar="DIR", help="write DIR/results/*.json and DIR/RESULTS.md instead"
    )
    parser.add_argument(
        "--baseline-revision", default=BASELINE_REVISION, help="git revision of `+before`"
    )
    args = parser.parse_args(argv)
    # the tables name the commit they measure: refuse a dirty tree before measuring, not after
    writes_results = not args.output and not args.no_markdown
    try:
        args.commit = stamp.commit_to_record(allow_dirty=not writes_results)
    except stamp.DirtyTreeError as err:
        parser.error(str(err))
    requested = args.workloads or default_workloads()
    suites = [w for w in requested if w in SUITES]
    specs = [w for w in requested if w not in SUITES]
    try:
        for spec in specs:
            parse_spec(spec)
        if specs:
            run_training_suite(specs, args)
        for suite in suites:
            SUITES[suite](args)
    except WorkloadError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
