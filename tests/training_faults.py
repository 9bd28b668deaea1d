"""Training runs that fail on purpose: a failure between two steps on the first attempt only,
and a record of where each attempt started (shared by the train-flow tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lightning.pytorch import Callback, LightningModule, Trainer

import tasks.train


class FailOnce(Callback):
    """Raise between two training steps when the module reaches ``iteration``."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if int(pl_module.iteration) == self.iteration:  # type: ignore[arg-type]
            raise RuntimeError(f"injected failure at iteration {self.iteration}")


class StartIteration(Callback):
    """Record the iteration a fit starts at (0 for a fresh run, the checkpoint's on resume)."""

    def __init__(self) -> None:
        self.iteration: int | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.iteration = int(pl_module.iteration)  # type: ignore[arg-type]


def flaky_fit(
    monkeypatch: pytest.MonkeyPatch,
    fail_at: int,
    before_retry: Callable[[str], None] = lambda run_dir: None,
) -> list[StartIteration]:
    """Make the training task's ``fit`` fail at ``fail_at`` on its first call only.

    ``before_retry(run_dir)`` runs before every later call. Returns one recorder per call.
    """
    real_fit = tasks.train.fit
    starts: list[StartIteration] = []

    def fit(config: Any, datamodule: Any, run_dir: str, **kwargs: Any) -> Any:
        start = StartIteration()
        extra: list[Callback] = [start] if starts else [start, FailOnce(fail_at)]
        if starts:
            before_retry(run_dir)
        starts.append(start)
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), *extra]
        return real_fit(config, datamodule, run_dir, **kwargs)

    monkeypatch.setattr(tasks.train, "fit", fit)
    return starts
