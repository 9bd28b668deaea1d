"""What the step's bookkeeping costs: logging, optimizer toggling, the non-finite check.

The ``tiny-adversarial`` workload (8-channel networks, so compute is small) trains in a fresh
process with :class:`~srgan.module.SRGANModule` methods wrapped by timers. CPU time of the
calling thread (``time.thread_time``) is reported next to wall time: it is what the call itself
costs, while wall time also counts waiting for a CPU on this shared machine.

Run alone: ``python -m bench overhead``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench import report
from bench.system import machine
from bench.training import run_worker
from bench.workloads import HR_SIZE, parse_spec

METHODS = (
    "training_step",
    "log_dict",
    "toggle_optimizer",
    "untoggle_optimizer",
    "_check_finite",
    "_step_warmup",
)
WARMUP, ITERATIONS = 5, 40


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Median wall and CPU milliseconds per call, and calls per iteration, of each method."""
    import lightning

    from srgan.config import load_config
    from srgan.module import SRGANModule
    from srgan.train import build_trainer

    torch.set_num_threads(int(job["threads"]))
    spec = parse_spec(job["workload"])
    total = WARMUP + ITERATIONS
    overrides = {**spec.overrides, "schedule": {**spec.overrides["schedule"]}}
    overrides["schedule"]["max_iterations"] = total
    cfg = load_config("cpu-tiny", overrides)
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: SRGANModule, *args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            out = method(self, *args, **kwargs)
            if self.iteration >= WARMUP:
                samples[name].append((time.perf_counter() - wall, time.thread_time() - cpu))
            return out

        return wrapper

    for name in METHODS:
        setattr(SRGANModule, name, timed(name, getattr(SRGANModule, name)))
    lightning.seed_everything(0, verbose=False)
    hr = torch.rand(cfg.data.batch_size * (total + 1), cfg.in_bands, HR_SIZE, HR_SIZE)
    lr = torch.nn.functional.avg_pool2d(hr, cfg.data.scale)
    module = SRGANModule(cfg)
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-overhead-") as run_dir:
        trainer, _ = build_trainer(cfg, run_dir)
        trainer.fit(module, DataLoader(TensorDataset(lr, hr), batch_size=cfg.data.batch_size))
    return {
        name: {
            "calls_per_iteration": len(s) / ITERATIONS,
            "wall_ms": 1e3 * statistics.median(w for w, _ in s),
            "cpu_ms": 1e3 * statistics.median(c for _, c in s),
        }
        for name, s in samples.items()
        if s
    }


def render(payload: dict[str, Any]) -> str:
    """Markdown table of the per-call costs."""
    lines = [
        f"Command: `{payload['command']}` ({payload['created']}); workload "
        f"`{payload['workload']}`, {ITERATIONS} iterations after {WARMUP}; other processes used "
        f"{payload['load']['foreign_cpus']:.2f} CPUs.",
        "",
        "| method | calls/it | CPU ms/call (median) | wall ms/call (median) |",
        "|---|---|---|---|",
    ]
    for name, row in payload["methods"].items():
        lines.append(
            f"| `{name}` | {row['calls_per_iteration']:g} | {row['cpu_ms']:.3f}"
            f" | {row['wall_ms']:.3f} |"
        )
    return "\n".join(lines)


def run_overhead(
    command: str, workload: str = "tiny-adversarial", log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure in a fresh process; write JSON and the RESULTS.md block."""
    result = run_worker("bench.overhead", {"workload": workload, "threads": 2}, {}, 1800)
    payload = {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "workload": workload,
        "load": result.pop("load"),
        "methods": result,
    }
    report.write_json("overhead", payload)
    report.update_results_md("overhead", render(payload))
    log(render(payload))
    return payload


def main(argv: list[str]) -> int:
    """Worker entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    Path(result_path).write_text(json.dumps(measure(job), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
