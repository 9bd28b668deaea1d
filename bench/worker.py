"""One benchmark run in a fresh process: ``python -m bench.worker JOB.json RESULT.json``.

The job names the config overrides, the thread count and the iterations to time; the worker
trains through the real :class:`~srgan.module.SRGANModule` and the Trainer of
:func:`srgan.train.build_trainer` on in-memory data and writes the wall time between successive
``on_train_batch_end`` calls, the FLOPs of one extra iteration and its peak RSS.

The ``srgan`` package is imported only after ``srgan_root`` (if given) is put first on
``sys.path``, so the same worker can time the code of another revision. A job with ``"tune":
true`` instead measures the workload's step settings (:func:`srgan.step_trial.tune_step`) into
the tuning cache ``$S2SR_TUNING`` names.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode


class StepTimer(Callback):
    """Batch-end timestamps; optionally counts FLOPs of iteration ``flop_iteration``.

    Args:
        flop_iteration: index of the batch run under :class:`FlopCounterMode` (``None``: none).
        profile_iterations: ``(first, last)`` batch indices to run under ``torch.profiler``.
    """

    def __init__(
        self, flop_iteration: int | None, profile_iterations: tuple[int, int] | None = None
    ) -> None:
        self.ends: list[float] = []
        self.faults: list[int] = []
        self.cpu: list[float] = []
        self.flop_iteration = flop_iteration
        self.flops: int | None = None
        self.flops_by_module: dict[str, int] = {}
        self._counter: FlopCounterMode | None = None
        self.profile_iterations = profile_iterations
        self.profiler: torch.profiler.profile | None = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.flop_iteration:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if self.profile_iterations and batch_idx == self.profile_iterations[0]:
            self.profiler = torch.profiler.profile(record_shapes=True)
            self.profiler.__enter__()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if torch.cuda.is_available():  # kernels run asynchronously: time the finished step
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        self.cpu.append(time.process_time())
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops = int(self._counter.get_total_flops())
            self.flops_by_module = {
                name: int(sum(ops.values()))
                for name, ops in self._counter.get_flop_counts().items()
                if name.count(".") <= 1
            }
            self._counter = None
        if self.profiler is not None and batch_idx == self.profile_iterations[1]:  # type: ignore[index]
            self.profiler.__exit__(None, None, None)


def _profile_rows(profiler: torch.profiler.profile, iterations: int, top: int) -> list[dict]:
    rows = []
    averages = profiler.key_averages(group_by_input_shape=True)
    for event in sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        rows.append(
            {
                "op": event.key,
                "input_shapes": str(event.input_shapes)[:120],
                "self_ms_per_iteration": event.self_cpu_time_total / 1e3 / iterations,
                "calls_per_iteration": event.count / iterations,
            }
        )
    return rows


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Time one workload; see the module docstring for the job and result keys."""
    if job.get("srgan_root"):
        sys.path.insert(0, job["srgan_root"])
    torch.set_num_threads(int(job["threads"]))
    import lightning

    import srgan
    from srgan.config import load_config
    from srgan.module import SRGANModule
    from srgan.train import build_trainer

    warmup, iters = int(job["warmup"]), int(job["iterations"])
    count_flops = bool(job.get("count_flops", True))
    total = warmup + iters + (1 if count_flops else 0)
    overrides = dict(job["overrides"])
    overrides["schedule"] = {**overrides.get("schedule", {}), "max_iterations": total}
    cfg = load_config("cpu-tiny", overrides)

    lightning.seed_everything(0, verbose=False)
    n = cfg.data.batch_size * (total + 1)
    hr_size = int(job["hr_size"])
    hr = torch.rand(n, cfg.in_bands, hr_size, hr_size)
    lr = torch.nn.functional.avg_pool2d(hr, cfg.data.scale)
    loader = DataLoader(TensorDataset(lr, hr), batch_size=cfg.data.batch_size, shuffle=False)

    profile = job.get("profile_top")
    timer = StepTimer(
        warmup + iters if count_flops else None,
        (warmup, warmup + iters - 1) if profile else None,
    )
    if "nolog" in job.get("patches", ()):
        SRGANModule.log_dict = lambda self, *args, **kwargs: None  # type: ignore[method-assign]
    module = SRGANModule(cfg)
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-") as run_dir:
        trainer, _ = build_trainer(cfg, run_dir, callbacks=[timer])
        trainer.fit(module, train_dataloaders=loader)
        precision = str(trainer.precision)
    settings = _applied_settings(trainer)

    window = timer.ends[warmup - 1 : warmup + iters]
    intervals = [b - a for a, b in itertools.pairwise(window)]
    faults = timer.faults[warmup + iters - 1] - timer.faults[warmup - 1]
    cpu = timer.cpu[warmup + iters - 1] - timer.cpu[warmup - 1]
    result: dict[str, Any] = {
        "seconds_per_iteration": intervals,
        "page_faults_per_iteration": faults / iters,
        "cpu_seconds_per_iteration": cpu / iters,
        "flops_per_iteration": timer.flops,
        "flops_by_module": timer.flops_by_module,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "iterations_run": module.iteration,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "srgan_path": str(Path(srgan.__file__).parent),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "step_settings": settings,
    }
    if profile and timer.profiler is not None:
        result["profile"] = _profile_rows(timer.profiler, iters, int(profile))
    return result


def tune(job: dict[str, Any]) -> dict[str, Any]:
    """Measure the step settings of a workload into the cache ``$S2SR_TUNING`` names."""
    torch.set_num_threads(int(job["threads"]))
    from srgan.config import load_config
    from srgan.step_trial import tune_step

    overrides = dict(job["overrides"])
    overrides["schedule"] = {**overrides.get("schedule", {}), "max_iterations": 10}
    trial = tune_step(load_config("cpu-tiny", overrides), patch_size=int(job.get("hr_size", 128)))
    return {
        "settings": trial.settings.describe(),
        "trial": trial.as_dict(),
        "seconds": trial.seconds,
    }


def _applied_settings(trainer: Trainer) -> dict[str, Any] | None:
    """The step settings the fit ran with (code of revisions before they existed: ``None``)."""
    try:
        from srgan.host_tuning import applied_step_settings
    except ImportError:
        return None
    settings = applied_step_settings(trainer)
    return settings.as_dict() if settings is not None else None


def main(argv: list[str]) -> int:
    """Entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    result = tune(job) if job.get("tune") else run(job)
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
