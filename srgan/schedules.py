"""Step schedules of the SRGAN, all functions of the module's own iteration counter.

``iteration`` is the number of training batches completed before the current one (0-based). It is
*not* Lightning's ``global_step``, which counts optimizer steps: one per pretraining batch but two
per adversarial batch (D and G), so a schedule counted in ``global_step`` would end twice as early
once adversarial training begins.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from srgan.config import TrainingConfig

Ramp = Literal["linear", "cosine"]


def is_pretraining(iteration: int, pretrain_iterations: int) -> bool:
    """Whether the batch with index ``iteration`` trains the generator on content loss alone."""
    return iteration < pretrain_iterations


def _shape(progress: float, kind: Ramp) -> float:
    if kind == "linear":
        return progress
    if kind == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress))
    raise ValueError(f"unknown ramp {kind!r}; choose one of: cosine, linear")


def adversarial_weight(
    iteration: int, pretrain_iterations: int, ramp_iterations: int, beta: float, kind: Ramp
) -> float:
    """Weight of the adversarial term of the generator loss for batch ``iteration``.

    0 during pretraining; then it rises from ``beta / ramp_iterations`` (linear) on the first
    adversarial batch to ``beta`` on batch ``pretrain_iterations + ramp_iterations - 1`` and stays
    there. With ``ramp_iterations == 0`` it jumps straight to ``beta``.
    """
    if is_pretraining(iteration, pretrain_iterations):
        return 0.0
    if ramp_iterations == 0:
        return beta
    progress = min(1.0, (iteration - pretrain_iterations + 1) / ramp_iterations)
    return beta * _shape(progress, kind)


def warmup_factor(iteration: int, warmup_iterations: int, kind: Ramp) -> float:
    """Learning-rate multiplier for batch ``iteration`` during warm-up (1 afterwards)."""
    if iteration >= warmup_iterations:
        return 1.0
    return _shape((iteration + 1) / warmup_iterations, kind)


def phase(iteration: int, config: TrainingConfig) -> tuple[bool, float]:
    """Whether training batch ``iteration`` pretrains, and its adversarial weight (0 if so)."""
    s = config.schedule
    weight = adversarial_weight(
        iteration, s.pretrain_iterations, s.ramp_iterations, config.losses.adv_weight, s.ramp
    )
    return is_pretraining(iteration, s.pretrain_iterations), weight


def warmup_steps(iteration: int, config: TrainingConfig) -> tuple[bool, bool]:
    """Whether G's and D's warm-up schedulers step after training batch ``iteration``.

    Stepping stops after warm-up, so it never overrides a plateau reduction. D's warm-up counts
    D's own batches: it starts with D's first step after pretraining, not while D is frozen.
    """
    o = config.optim
    d_batch = iteration - config.schedule.pretrain_iterations
    return (
        iteration < o.generator.warmup_iterations,
        0 <= d_batch < o.discriminator.warmup_iterations,
    )


def plateau_steps(trained: int, config: TrainingConfig) -> tuple[bool, bool]:
    """Whether G's and D's plateau schedulers take a validation after ``trained`` batches.

    Each only once its warm-up is over; D's also only once D has trained at all, so a long
    pretraining never lowers D's learning rate before its first step.
    """
    o = config.optim
    d_trained = trained - config.schedule.pretrain_iterations
    return (
        trained >= o.generator.warmup_iterations,
        d_trained >= max(1, o.discriminator.warmup_iterations),
    )
