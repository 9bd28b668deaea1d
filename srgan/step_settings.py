"""The training step's speed settings, resolved: config value, else measured, else built-in.

Memory format, optimizer kernel, heap retention, ``torch.compile``, intra-op threads and (where
its quality has been shown to hold) bf16 autocast change how fast a step runs, not what it
computes (``bench equivalence`` and ``bench quality`` measure how little the numbers move).
Which of them is fastest depends on the machine: NHWC and fused Adam won on every CPU measured,
bf16 autocast is several times slower than float32 on CPUs without matrix units and faster on
ones with AMX. So each setting is resolved in this order:

1. a value in the config (``trainer.channels_last`` …, ``optim.fused``) — always wins;
2. what ``s2-srgan tune`` (or a ``trainer.autotune: trial`` fit) measured for this config on
   this machine (:mod:`srgan.tuning_cache`), unless ``trainer.autotune`` is ``off``;
3. the built-in choice (:data:`BUILT_IN`).

Example::

    settings = resolve_step_settings(config, torch.device("cpu"))
    settings.channels_last, settings.sources["channels_last"]  # True, "measured"
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from srgan.config import TrainerConfig, TrainingConfig
from srgan.tuning_cache import TuningCache, tuning_key

KIND = "training-step"
Source = Literal["config", "measured", "built-in"]
KNOBS = ("channels_last", "fused", "retain_freed_memory", "compile", "threads", "precision")
#: Used for a setting neither the config nor a measurement decides (``precision``: see
#: :func:`built_in_precision`; ``threads``: ``None`` keeps torch's default).
BUILT_IN: dict[str, Any] = {
    "channels_last": True,
    "fused": True,
    "retain_freed_memory": True,
    "compile": False,
    "threads": None,
}


@dataclass(frozen=True)
class StepSettings:
    """Resolved speed settings of the training step, with where each came from.

    Attributes:
        channels_last: NHWC weights and batches.
        fused: Fused Adam/AdamW kernel.
        retain_freed_memory: glibc heap retention during fit.
        compile: ``torch.compile`` of G and D.
        threads: Intra-op CPU threads during fit (``None``: torch's default).
        precision: Lightning precision (``32-true``, ``bf16-mixed`` …).
        sources: Per setting ``config``, ``measured`` or ``built-in``.
        measured_at: When the measurement used was taken, if one was.
    """

    channels_last: bool
    fused: bool
    retain_freed_memory: bool
    compile: bool
    threads: int | None
    precision: str
    sources: dict[str, Source] = field(default_factory=dict)
    measured_at: str | None = None

    def describe(self) -> str:
        """One line for reports, e.g. ``channels_last=True (measured), fused=True (config) …``."""
        values = asdict(self)
        return ", ".join(f"{k}={values[k]} ({self.sources.get(k, 'built-in')})" for k in KNOBS)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def training_device(trainer: TrainerConfig) -> torch.device:
    """Where ``trainer.accelerator`` trains: a CUDA GPU when it selects one and one exists."""
    on_cuda = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if on_cuda else "cpu")


def built_in_precision(trainer: TrainerConfig) -> str:
    """bf16-mixed when the run goes on a CUDA GPU, float32 elsewhere."""
    return "bf16-mixed" if training_device(trainer).type == "cuda" else "32-true"


def step_job(config: TrainingConfig) -> dict[str, Any]:
    """What decides the work of one step (the tuning cache's key; schedules do not count)."""
    return {
        "generator": config.generator.model_dump(mode="json"),
        "discriminator": config.discriminator.model_dump(mode="json"),
        "losses": config.losses.model_dump(mode="json"),
        "bands": config.in_bands,
        "scale": config.data.scale,
        "batch_size": config.data.batch_size,
        "ema": config.ema.enabled,
        "optimizers": [
            (o.name, o.grad_clip_norm is not None)
            for o in (config.optim.generator, config.optim.discriminator)
        ],
        "accelerator": config.trainer.accelerator,
        "devices": str(config.trainer.devices),
    }


def step_key(config: TrainingConfig, device: torch.device) -> str:
    """The tuning-cache key of ``config``'s step on this machine and ``device``."""
    return tuning_key(KIND, step_job(config), device)


def explicit_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings the config gives a value (``None``: left to measurement)."""
    t = config.trainer
    return {
        "channels_last": t.channels_last,
        "fused": config.optim.fused,
        "retain_freed_memory": t.retain_freed_memory,
        "compile": t.compile,
        "threads": t.threads,
        "precision": t.precision,
    }


def measured_step_settings(config: TrainingConfig, device: torch.device) -> dict[str, Any] | None:
    """What was measured for ``config`` on this machine, or ``None``."""
    return TuningCache().get(step_key(config, device))


def resolve_step_settings(
    config: TrainingConfig, device: torch.device | None = None
) -> StepSettings:
    """Each setting from the config, else the measurement, else :data:`BUILT_IN`.

    Args:
        config: The training config.
        device: Where the step runs; default :func:`training_device`.
    """
    device = device or training_device(config.trainer)
    explicit = explicit_settings(config)
    measured = None if config.trainer.autotune == "off" else measured_step_settings(config, device)
    built_in = {**BUILT_IN, "precision": built_in_precision(config.trainer)}
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for knob in KNOBS:
        if explicit[knob] is not None:
            values[knob], sources[knob] = explicit[knob], "config"
        elif measured is not None and knob in measured:
            values[knob], sources[knob] = measured[knob], "measured"
        else:
            values[knob], sources[knob] = built_in[knob], "built-in"
    measured_at = None
    if measured is not None and "measured" in sources.values():
        measured_at = measured.get("measured_at")
    return StepSettings(**values, sources=sources, measured_at=measured_at)
