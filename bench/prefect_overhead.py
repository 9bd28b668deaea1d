"""What Prefect orchestration adds to a training run: ``fit`` directly vs the ``train-srgan`` flow.

The same short training (same config, same patch store cut from the six real BigEarthNet-S2
patches) runs alternately through :func:`srgan.train.fit` and through the ``train-srgan`` flow,
in-process, against a temporary local Prefect server (SQLite, HTTP on 127.0.0.1) started before
any timing. Each side's wall time covers config validation, opening the store and ``fit``; the
flow's also covers the flow and task runs, the log bridge, the progress artifact and the final
artifacts. ``fit`` reports its own training time (``FitResult.seconds``), so the orchestration
overhead is the flow's wall time minus the fit time it reports.

Run: ``python -m bench.prefect_overhead [--iterations 60] [--repeats 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench import report, stamp
from bench.system import machine

RESULT_NAME = "prefect_overhead"

#: ``cpu-tiny`` networks on 32 px HR patches; a third of the iterations are adversarial.
OVERRIDES: dict[str, Any] = {
    "data": {"batch_size": 8, "num_workers": 0},
    "schedule": {"pretrain_iterations": 20, "ramp_iterations": 20},
    "validation": {"every_n_iterations": 30},
    "trainer": {"checkpoint_every_n_iterations": 30, "log_every_n_iterations": 10},
}


def make_store(root: Path) -> str:
    """Tile the BigEarthNet-S2 sample patches into ``root/sentinel2.zarr`` (both splits)."""
    from datasets.sample_data import fetch_bigearthnet
    from datasets.tiling import SplitPolicy, tile_scene

    store = str(root / "sentinel2.zarr")
    for scene in fetch_bigearthnet():
        tile_scene(
            str(scene),
            store,
            bands=["B02", "B03", "B04", "B08"],
            scale=4,
            patch_size=32,
            split=SplitPolicy(mode="block", block_size=64),
        )
    return store


def run_direct(store: str, iterations: int, run_dir: Path) -> dict[str, float]:
    """Config + store + ``fit``, no Prefect; wall and reported fit seconds."""
    from srgan.config import deep_merge, load_config
    from srgan.data import datamodule_for
    from srgan.train import fit

    started, cpu = time.perf_counter(), time.process_time()
    overrides = deep_merge(
        OVERRIDES, {"data": {"store": store}, "schedule": {"max_iterations": iterations}}
    )
    config = load_config("cpu-tiny", overrides)
    datamodule = datamodule_for(config.data)
    result = fit(config, datamodule, run_dir)
    return {
        "wall": time.perf_counter() - started,
        "fit": result.seconds,
        "cpu": time.process_time() - cpu,
    }


def run_flow(store: str, iterations: int, storage: Path, run_key: str) -> dict[str, float]:
    """The ``train-srgan`` flow in-process; wall and the fit seconds it reports."""
    from flows.train import train_srgan

    started, cpu = time.perf_counter(), time.process_time()
    result = train_srgan(
        store=store,
        config="cpu-tiny",
        overrides=OVERRIDES,
        storage=str(storage),
        run_key=run_key,
        max_iterations=iterations,
    )
    return {
        "wall": time.perf_counter() - started,
        "fit": float(result.fit.seconds),
        "cpu": time.process_time() - cpu,
    }


def summarise(direct: list[dict[str, float]], flow: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of both sides, the flow's overhead over its own fit, and flow / direct ratios."""

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    flow_overhead = [r["wall"] - r["fit"] for r in flow]
    direct_overhead = [r["wall"] - r["fit"] for r in direct]
    return {
        "direct_wall_s": median(direct, "wall"),
        "direct_fit_s": median(direct, "fit"),
        "direct_outside_fit_s": statistics.median(direct_overhead),
        "direct_cpu_s": median(direct, "cpu"),
        "flow_wall_s": median(flow, "wall"),
        "flow_fit_s": median(flow, "fit"),
        "flow_overhead_s": statistics.median(flow_overhead),
        "flow_overhead_range_s": [min(flow_overhead), max(flow_overhead)],
        "flow_cpu_s": median(flow, "cpu"),
        "wall_ratio_flow_vs_direct": median(flow, "wall") / median(direct, "wall"),
        "overhead_fraction_of_flow_wall": statistics.median(
            (r["wall"] - r["fit"]) / r["wall"] for r in flow
        ),
    }


def markdown(payload: dict[str, Any]) -> str:
    """The result as a markdown table for ``bench/RESULTS.md``."""
    s = payload["summary"]
    lo, hi = s["flow_overhead_range_s"]
    return "\n".join(
        [
            f"{payload['iterations']} iterations of `cpu-tiny` (32 px patches, batch 8), "
            f"{payload['repeats']} alternating repeats after {payload['warmup']} warm-up pair(s), "
            f"{payload['threads']} torch thread(s); Prefect server start (not counted): "
            f"{payload['server_start_s']:.1f} s.",
            "",
            "| path | wall s (median) | fit s reported inside | wall − fit | process CPU s |",
            "|---|---|---|---|---|",
            f"| `srgan.train.fit` | {s['direct_wall_s']:.2f} | {s['direct_fit_s']:.2f}"
            f" | {s['direct_outside_fit_s']:.2f} | {s['direct_cpu_s']:.2f} |",
            f"| `train-srgan` flow | {s['flow_wall_s']:.2f} | {s['flow_fit_s']:.2f}"
            f" | {s['flow_overhead_s']:.2f} ({lo:.2f}–{hi:.2f}) | {s['flow_cpu_s']:.2f} |",
            "",
            f"Orchestration overhead: **{s['flow_overhead_s']:.2f} s** per run "
            f"({100 * s['overhead_fraction_of_flow_wall']:.0f} % of the flow's wall time); "
            f"flow / direct wall-time ratio **{s['wall_ratio_flow_vs_direct']:.2f}×**.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Time both paths, print the table, write ``bench/results/prefect_overhead.json`` and the
    ``prefect-overhead`` block of ``bench/RESULTS.md`` (unless ``--no-json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs first (imports)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-json", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:  # the table names the commit it measures: refuse a dirty tree before measuring
        commit = stamp.commit_to_record(allow_dirty=args.no_json)
    except stamp.DirtyTreeError as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="prefect-overhead-") as tmp:
        root = Path(tmp)
        store = make_store(root)
        started = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            server_start = time.perf_counter() - started
            direct, flow = [], []
            for i in range(args.warmup + args.repeats):
                one = run_direct(store, args.iterations, root / f"direct-{i}")
                other = run_flow(store, args.iterations, root / "storage", f"flow-{i}")
                print(f"pair {i + 1}: direct {one}, flow {other}", flush=True)
                if i >= args.warmup:
                    direct.append(one)
                    flow.append(other)
    payload = {
        "iterations": args.iterations,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "server_start_s": server_start,
        "direct": direct,
        "flow": flow,
        "summary": summarise(direct, flow),
        "machine": machine(),
    }
    print(markdown(payload))
    print(json.dumps(payload["summary"], indent=1))
    if not args.no_json:
        print(f"wrote {report.write_json(RESULT_NAME, payload)}")
        report.update_results_md("prefect-overhead", markdown(payload), commit=commit)
    return payload


if __name__ == "__main__":
    main()
