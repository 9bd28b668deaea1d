"""A short timed trial that picks the training step's speed settings on this machine.

Starting from the resolved settings without measurements (config values and built-ins), each
setting the config leaves open is flipped in turn; a few real training iterations (the module's
own step through a Lightning Trainer, synthetic batches of the config's shape) are timed with
and without the change, back to back, and the change is kept when it is faster by more than
:data:`MIN_GAIN` in every round. The winners go into the tuning cache
(:mod:`srgan.tuning_cache`), where :func:`~srgan.step_settings.resolve_step_settings` finds them
for every later fit of the same config on the same machine. The trial leaves every random
generator as it found it.

``torch.compile`` is tried on a GPU only unless asked for (compiling takes minutes on a CPU and
has not been faster there); ``bf16-mixed`` is tried when ``trainer.precision`` is unset.

Example::

    trial = tune_step(load_config("s2-10m-rgbn-x4"))
    trial.settings.describe()
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

from srgan.config import TrainingConfig, deep_merge, validate_config
from srgan.rng import restore_rng_states, rng_states
from srgan.step_settings import (
    BUILT_IN,
    Source,
    StepSettings,
    built_in_precision,
    explicit_settings,
    resolve_step_settings,
    step_key,
    training_device,
)
from srgan.tuning_cache import TuningCache

#: A change is kept when the step gets at least this much faster (relative), so noise on a
#: shared machine does not flip settings back and forth.
MIN_GAIN = 0.03
#: HR patch edge of the synthetic batches (the tiling default).
TRIAL_PATCH = 128
Phase = Literal["auto", "pretrain", "adversarial"]


@dataclass(frozen=True)
class TrialRun:
    """One timed configuration: the settings tried and the median seconds per iteration."""

    settings: dict[str, Any]
    seconds_per_iteration: float


@dataclass
class StepTrial:
    """What :func:`tune_step` found: the chosen settings and every timing behind them."""

    settings: StepSettings
    phase: str
    patch_size: int
    runs: list[TrialRun] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class _Timer(Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def _alternatives(
    config: TrainingConfig, device: torch.device, compile_on_cpu: bool
) -> dict[str, list[Any]]:
    """The values to try for each setting the config leaves open."""
    options: dict[str, list[Any]] = {
        "channels_last": [True, False],
        "fused": [True, False],
        "retain_freed_memory": [True, False],
        "precision": ["32-true", "bf16-mixed"],
    }
    if device.type == "cuda" or compile_on_cpu:
        options["compile"] = [False, True]
    cores = os.cpu_count() or 1
    if device.type == "cpu" and cores != torch.get_num_threads():
        options["threads"] = [None, cores]
    explicit = explicit_settings(config)
    return {k: v for k, v in options.items() if explicit[k] is None}


def _trial_config(config: TrainingConfig, settings: dict[str, Any], phase: str, total: int) -> Any:
    overrides = {
        "schedule": {
            "pretrain_iterations": 10**9 if phase == "pretrain" else 0,
            "ramp_iterations": 0,
            "max_iterations": total,
        },
        "validation": {"every_n_iterations": 10**9, "train_metrics_every": 10**9},
        "optim": {"fused": settings["fused"]},
        "trainer": {
            "channels_last": settings["channels_last"],
            "retain_freed_memory": settings["retain_freed_memory"],
            "compile": settings["compile"],
            "threads": settings["threads"],
            "precision": settings["precision"],
            "autotune": "off",
            "log_every_n_iterations": 10**9,
            "checkpoint_every_n_iterations": 10**9,
            "devices": 1,
            "strategy": "auto",
            "num_nodes": 1,
        },
    }
    return validate_config(deep_merge(config.model_dump(mode="json"), overrides))


def time_step(
    config: TrainingConfig,
    settings: dict[str, Any],
    phase: str = "adversarial",
    patch_size: int = TRIAL_PATCH,
    warmup: int = 2,
    iterations: int = 4,
) -> float:
    """Median seconds per training iteration of ``config`` run with ``settings``.

    Args:
        config: The training config (its networks, losses and batch size).
        settings: A value for every setting in :data:`~srgan.step_settings.KNOBS`.
        phase: ``pretrain`` (G only) or ``adversarial`` (D and G).
        patch_size: HR edge of the synthetic patches.
        warmup: Untimed first iterations (kernel selection, compilation).
        iterations: Timed iterations.
    """
    from srgan.module import SRGANModule

    total = warmup + iterations
    cfg = _trial_config(config, settings, phase, total)
    scale, bands, batch = cfg.data.scale, cfg.in_bands, cfg.data.batch_size
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(batch * total, bands, patch_size, patch_size, generator=generator)
    lr = torch.nn.functional.avg_pool2d(hr, scale)
    loader = DataLoader(TensorDataset(lr, hr), batch_size=batch)
    timer = _Timer()
    trainer = Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=settings["precision"],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(SRGANModule(cfg), train_dataloaders=loader)
    window = timer.ends[warmup - 1 :]
    return statistics.median(b - a for a, b in itertools.pairwise(window))


def _phase(config: TrainingConfig, phase: Phase) -> str:
    if phase != "auto":
        return phase
    s = config.schedule
    adversarial = (s.max_iterations or 10 * s.pretrain_iterations + 1) - s.pretrain_iterations
    return "adversarial" if adversarial >= s.pretrain_iterations else "pretrain"


def tune_step(
    config: TrainingConfig,
    *,
    phase: Phase = "auto",
    patch_size: int = TRIAL_PATCH,
    warmup: int = 2,
    iterations: int = 4,
    rounds: int = 2,
    compile_on_cpu: bool = False,
    store: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> StepTrial:
    """Measure the open settings of ``config``'s step on this machine; cache the winners.

    Args:
        config: The training config; settings it gives a value are not tried.
        phase: The step to time; ``auto``: the phase most of the run's iterations are in.
        patch_size: HR edge of the synthetic patches.
        warmup: Untimed iterations per timed run.
        iterations: Timed iterations per run.
        rounds: Times each comparison is repeated (back to back; the change must win each).
        compile_on_cpu: Also try ``torch.compile`` on a CPU.
        store: Write the result into the tuning cache.
        log: Receives one line per timed run.

    Returns:
        The chosen settings and the timings.
    """
    started = time.perf_counter()
    device = training_device(config.trainer)
    chosen_phase = _phase(config, phase)
    explicit = explicit_settings(config)
    built_in = {**BUILT_IN, "precision": built_in_precision(config.trainer)}
    current = {k: explicit[k] if explicit[k] is not None else built_in[k] for k in built_in}
    trial = StepTrial(
        settings=resolve_step_settings(config, device), phase=chosen_phase, patch_size=patch_size
    )  # replaced by the measured settings at the end
    states = rng_states()
    try:

        def timed(settings: dict[str, Any]) -> float:
            seconds = time_step(config, settings, chosen_phase, patch_size, warmup, iterations)
            trial.runs.append(TrialRun(dict(settings), seconds))
            log(f"{chosen_phase} {settings}: {seconds:.3f} s/it")
            return seconds

        alternatives = _alternatives(config, device, compile_on_cpu)
        for knob, values in alternatives.items():
            for value in values:
                if value == current[knob]:
                    continue
                other = {**current, knob: value}
                # each round times both back to back; the change must win every round, so a
                # burst of load from other processes during one run cannot decide
                ratios = [timed(other) / timed(current) for _ in range(rounds)]
                if max(ratios) < 1 - MIN_GAIN:
                    current = other
    finally:
        restore_rng_states(states)
    measured = {k: v for k, v in current.items() if k in alternatives}
    if store:
        TuningCache().put(step_key(config, device), {**measured, "phase": chosen_phase})
    sources: dict[str, Source] = {
        k: "config" if explicit[k] is not None else "built-in" for k in current
    }
    trial.settings = StepSettings(
        **current, sources={**sources, **dict.fromkeys(measured, "measured")}
    )
    trial.seconds = time.perf_counter() - started
    return trial
