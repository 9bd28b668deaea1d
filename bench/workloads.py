"""The training workloads: the issue #5 reference configurations and their named variants.

A workload spec reads ``BASE[+MOD...]``: ``BASE`` is one of :data:`BASES` and each ``MOD`` is
either a named variant from :data:`VARIANTS` or a ``dotted.key=value`` config override (the
value parsed as YAML), e.g. ``adversarial+bf16`` or ``pretrain+trainer.channels_last=false``.

``opensr:BASE`` (e.g. ``opensr:adversarial``) is the same workload on the reference
implementation, opensr-srgan 0.4.3, run by :mod:`bench.reference_worker` in its own venv; it
takes no variants, and only bases the reference can express (see :func:`opensr_workload`).

Example::

    spec = parse_spec("small-adversarial+before")
    spec.overrides["schedule"]["pretrain_iterations"]  # 0
    parse_spec("opensr:pretrain").opensr["phase"]  # "pretrain"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srgan.cli import parse_set
from srgan.config import TrainingConfig, deep_merge, load_config

#: The reference networks (SRGAN paper sizes) and the reduced "small" generator.
_REFERENCE_GENERATOR = {
    "name": "srresnet",
    "block": "standard",
    "channels": 64,
    "n_blocks": 16,
    "large_kernel": 9,
    "small_kernel": 3,
    "bicubic_skip": False,
}
_SMALL_GENERATOR = {**_REFERENCE_GENERATOR, "channels": 32, "n_blocks": 4}
#: Networks so small that a step measures the framework and the step's own bookkeeping.
_TINY_GENERATOR = {**_REFERENCE_GENERATOR, "channels": 8, "n_blocks": 1}
_TINY_DISCRIMINATOR = {"base_channels": 8, "n_blocks": 2, "pool_size": 2, "fc_features": 16}
_DISCRIMINATOR = {
    "name": "srgan",
    "base_channels": 64,
    "n_blocks": 8,
    "pool_size": 6,
    "fc_features": 1024,
    "spectral_norm": False,
}

#: Pretraining that never ends within a benchmark run.
_FOREVER = 10**9
#: Intervals so large that no checkpoint, log write or validation happens in a run.
_NEVER = 10**9

#: HR patch side and scale of every training workload (LR is 32×32).
HR_SIZE = 128
SCALE = 4
BATCH_SIZE = 4
#: Threads of the reference measurement (the machine's core count when it was taken).
REFERENCE_THREADS = 2


def _common(generator: dict[str, Any], pretrain_iterations: int) -> dict[str, Any]:
    return {
        "data": {
            "bands": ["B02", "B03", "B04", "B08"],
            "scale": SCALE,
            "batch_size": BATCH_SIZE,
            "num_workers": 0,
        },
        "generator": generator,
        "discriminator": _DISCRIMINATOR,
        "losses": {
            "l1_weight": 1.0,
            "sam_weight": 0.0,
            "tv_weight": 0.0,
            "perceptual_weight": 0.0,
            "adversarial": "bce",
            "real_label": 1.0,
            "r1_gamma": 0.0,
            "adv_weight": 1e-3,
        },
        "schedule": {"pretrain_iterations": pretrain_iterations, "ramp_iterations": 0},
        "optim": {
            "generator": {"lr": 1e-4, "warmup_iterations": 0},
            "discriminator": {"lr": 1e-4, "warmup_iterations": 0},
        },
        "ema": {"enabled": False},
        "validation": {"every_n_iterations": _NEVER, "train_metrics_every": _NEVER},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "log_every_n_iterations": _NEVER,
            "checkpoint_every_n_iterations": _NEVER,
        },
    }


#: Base workloads: name -> config overrides on top of the ``cpu-tiny`` preset.
BASES: dict[str, dict[str, Any]] = {
    "pretrain": _common(_REFERENCE_GENERATOR, _FOREVER),
    "adversarial": _common(_REFERENCE_GENERATOR, 0),
    "small-pretrain": _common(_SMALL_GENERATOR, _FOREVER),
    "small-adversarial": _common(_SMALL_GENERATOR, 0),
    "tiny-adversarial": deep_merge(
        _common(_TINY_GENERATOR, 0), {"discriminator": _TINY_DISCRIMINATOR}
    ),
}


@dataclass(frozen=True)
class Variant:
    """A named change to a workload: config overrides, and/or run settings of the worker."""

    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    baseline_code: bool = False
    threads: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    patches: tuple[str, ...] = ()


#: Named variants. ``before`` runs the srgan package of the baseline revision (the code before
#: the issue #5 optimisations), so every optimisation gets a before/after pair in one run.
VARIANTS: dict[str, Variant] = {
    "before": Variant("srgan code of the baseline revision", baseline_code=True),
    "bf16": Variant("bf16-mixed autocast", {"trainer": {"precision": "bf16-mixed"}}),
    "compile": Variant("torch.compile of G and D", {"trainer": {"compile": True}}),
    "nchw": Variant("NCHW memory format", {"trainer": {"channels_last": False}}),
    "unfused": Variant("per-tensor (unfused) Adam", {"optim": {"fused": False}}),
    "joint-d": Variant("one D forward on real+fake", {"discriminator": {"joint_real_fake": True}}),
    "finite-every-step": Variant(
        "non-finite check every iteration", {"trainer": {"finite_check_every": 1}}
    ),
    "malloc-default": Variant(
        "glibc's default mmap/trim thresholds", {"trainer": {"retain_freed_memory": False}}
    ),
    "threads1": Variant("1 intra-op thread", threads=1),
    "nolog": Variant("diagnostic: SRGANModule.log_dict replaced by a no-op", patches=("nolog",)),
}


#: Prefix of a workload spec timed on the reference implementation, opensr-srgan 0.4.3.
OPENSR_PREFIX = "opensr:"
#: Settings a workload must have for opensr-srgan 0.4.3 to run the same thing: its SRGAN
#: discriminator hard-codes width, pool and FC size, and this benchmark drives no schedule
#: boundary (the reference counts its schedules in optimizer steps, two per adversarial batch).
_OPENSR_FIXED: dict[str, Any] = {
    "generator.name": "srresnet",
    "generator.block": "standard",
    "generator.bicubic_skip": False,
    "discriminator.name": "srgan",
    "discriminator.base_channels": 64,
    "discriminator.pool_size": 6,
    "discriminator.fc_features": 1024,
    "discriminator.spectral_norm": False,
    "discriminator.joint_real_fake": False,
    "losses.sam_weight": 0.0,
    "losses.tv_weight": 0.0,
    "losses.perceptual_weight": 0.0,
    "losses.adversarial": "bce",
    "losses.real_label": 1.0,
    "losses.r1_gamma": 0.0,
    "schedule.ramp_iterations": 0,
    "optim.generator.warmup_iterations": 0,
    "optim.discriminator.warmup_iterations": 0,
    "optim.generator.grad_clip_norm": None,
    "optim.discriminator.grad_clip_norm": None,
    "ema.enabled": False,
    "trainer.precision": "32-true",
}


def _resolve(cfg: TrainingConfig, dotted: str) -> Any:
    value: Any = cfg
    for key in dotted.split("."):
        value = getattr(value, key)
    return value


def opensr_workload(overrides: dict[str, Any]) -> dict[str, Any]:
    """What :mod:`bench.reference_worker` needs to run ``overrides`` on opensr-srgan 0.4.3.

    Raises:
        WorkloadError: the workload sets something the reference cannot express, or switches
            phase inside a run.
    """
    cfg = load_config("cpu-tiny", deep_merge(overrides, {"schedule": {"max_iterations": 1}}))
    for dotted, wanted in _OPENSR_FIXED.items():
        if (value := _resolve(cfg, dotted)) != wanted:
            raise WorkloadError(f"opensr-srgan cannot run {dotted}={value!r}: needs {wanted!r}")
    if cfg.schedule.pretrain_iterations not in (0, _FOREVER):
        raise WorkloadError("opensr workloads are all pretraining or all adversarial")
    g = cfg.generator
    return {
        "phase": "pretrain" if cfg.schedule.pretrain_iterations else "adversarial",
        "bands": cfg.in_bands,
        "scale": cfg.data.scale,
        "batch_size": cfg.data.batch_size,
        "hr_size": HR_SIZE,
        "generator": {
            "channels": g.channels,
            "n_blocks": g.n_blocks,
            "large_kernel": g.large_kernel,
            "small_kernel": g.small_kernel,
        },
        "discriminator": {"n_blocks": cfg.discriminator.n_blocks},
        "l1_weight": cfg.losses.l1_weight,
        "adv_weight": cfg.losses.adv_weight,
        "lr_g": cfg.optim.generator.lr,
        "lr_d": cfg.optim.discriminator.lr,
    }


@dataclass(frozen=True)
class WorkloadSpec:
    """A parsed workload spec: everything a worker process needs besides the code to run."""

    name: str
    base: str
    overrides: dict[str, Any]
    baseline_code: bool
    threads: int
    env: dict[str, str]
    patches: tuple[str, ...] = ()
    #: For ``opensr:`` specs the reference worker's workload (:func:`opensr_workload`).
    opensr: dict[str, Any] | None = None


class WorkloadError(ValueError):
    """A workload spec names an unknown base or variant."""


def parse_spec(spec: str) -> WorkloadSpec:
    """Parse ``BASE[+MOD...]`` into a :class:`WorkloadSpec`.

    Raises:
        WorkloadError: unknown base or variant, with the valid names.
    """
    if spec.startswith(OPENSR_PREFIX):
        return _parse_opensr(spec)
    base, *mods = spec.split("+")
    if base not in BASES:
        raise WorkloadError(f"unknown workload {base!r}; choose one of: {', '.join(BASES)}")
    overrides = BASES[base]
    baseline_code = False
    threads = REFERENCE_THREADS
    env: dict[str, str] = {}
    patches: tuple[str, ...] = ()
    for mod in mods:
        if "=" in mod:
            overrides = deep_merge(overrides, parse_set([mod]))
            continue
        if mod not in VARIANTS:
            raise WorkloadError(
                f"unknown variant {mod!r} in {spec!r}; choose one of: {', '.join(VARIANTS)} "
                "or give a config override KEY=VALUE"
            )
        variant = VARIANTS[mod]
        overrides = deep_merge(overrides, variant.overrides)
        baseline_code = baseline_code or variant.baseline_code
        threads = variant.threads or threads
        env.update(variant.env)
        patches += variant.patches
    return WorkloadSpec(spec, base, overrides, baseline_code, threads, env, patches)


def _parse_opensr(spec: str) -> WorkloadSpec:
    base = spec.removeprefix(OPENSR_PREFIX)
    if "+" in base:
        raise WorkloadError(f"{spec!r}: opensr workloads take no variants")
    if base not in BASES:
        raise WorkloadError(
            f"unknown workload {spec!r}; choose {OPENSR_PREFIX}BASE with BASE one of: "
            + ", ".join(BASES)
        )
    overrides = BASES[base]
    return WorkloadSpec(
        spec, base, overrides, False, REFERENCE_THREADS, {}, opensr=opensr_workload(overrides)
    )
