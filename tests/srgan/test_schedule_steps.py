"""When the learning-rate schedulers step: warm-up for exactly its length, plateau only after it.

G's warm-up scheduler steps after batches ``0 … warmup − 1`` and never again (a later step would
undo a plateau reduction); D's counts D's own batches, which start after pretraining. A plateau
scheduler takes a validation only once its warm-up is over, and D's only once D has trained.

Shown failing (mutation testing found the first unguarded): ``iteration <= warmup_iterations``
for G in ``srgan.schedules.warmup_steps``; ``0 < d_batch`` for D; ``trained > warmup`` in
``plateau_steps``; ``max(0, …)`` for D's plateau.
"""

from __future__ import annotations

from srgan.config import load_config
from srgan.schedules import plateau_steps, warmup_steps

PRETRAIN, G_WARMUP, D_WARMUP = 6, 4, 3
CONFIG = load_config(
    "cpu-tiny",
    {
        "schedule": {"pretrain_iterations": PRETRAIN},
        "optim": {
            "generator": {"warmup_iterations": G_WARMUP},
            "discriminator": {"warmup_iterations": D_WARMUP},
        },
    },
)


def test_generator_warmup_steps_after_its_first_batches_only() -> None:
    steps = [warmup_steps(i, CONFIG)[0] for i in range(12)]
    assert steps == [True] * G_WARMUP + [False] * (12 - G_WARMUP)


def test_discriminator_warmup_counts_its_own_batches() -> None:
    steps = [warmup_steps(i, CONFIG)[1] for i in range(12)]
    # D trains from batch PRETRAIN on; its warm-up covers D's first D_WARMUP batches
    assert steps == [False] * PRETRAIN + [True] * D_WARMUP + [False] * (12 - PRETRAIN - D_WARMUP)


def test_plateau_waits_for_the_end_of_warmup() -> None:
    g = [plateau_steps(trained, CONFIG)[0] for trained in range(12)]
    assert g == [False] * G_WARMUP + [True] * (12 - G_WARMUP)


def test_discriminator_plateau_waits_for_its_warmup_after_pretraining() -> None:
    d = [plateau_steps(trained, CONFIG)[1] for trained in range(12)]
    first = PRETRAIN + D_WARMUP  # D has trained D_WARMUP batches
    assert d == [False] * first + [True] * (12 - first)


def test_discriminator_plateau_without_warmup_waits_for_one_trained_batch() -> None:
    cfg = CONFIG.model_copy(deep=True)
    cfg.optim.discriminator.warmup_iterations = 0
    d = [plateau_steps(trained, cfg)[1] for trained in range(10)]
    assert d == [False] * (PRETRAIN + 1) + [True] * (10 - PRETRAIN - 1)
