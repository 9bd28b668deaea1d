"""The training task's progress artifact: percentages of the run's real length, also by epochs.

The Prefect calls of :class:`tasks.progress.PrefectProgress` are replaced by recorders, so the
callback runs inside a plain CPU fit (no server).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import pytest
from toy_data import PairDataModule, make_pairs

import tasks.progress
from srgan.config import load_config
from srgan.train import fit
from tasks.train import progress_for

#: 24 training pairs in batches of 4: 6 iterations per epoch.
BATCHES_PER_EPOCH = 6


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """(description or "update", progress) of every artifact call, in order."""
    calls: list[tuple[str, float]] = []

    def create(progress: float, key: str, description: str) -> Any:
        calls.append((description, progress))
        return uuid4()

    def update(artifact_id: Any, progress: float) -> None:
        calls.append(("update", progress))

    monkeypatch.setattr(tasks.progress, "create_progress_artifact", create)
    monkeypatch.setattr(tasks.progress, "update_progress_artifact", update)
    monkeypatch.setattr(tasks.progress, "get_run_logger", lambda: logging.getLogger("test"))
    return calls


def _fit(tiny: Any, tmp_path: Any, schedule: dict[str, Any], trainer: dict[str, Any]) -> None:
    config = load_config("cpu-tiny", tiny(schedule=schedule, trainer=trainer))
    lr, hr = make_pairs(28, bands=4, hr_size=16, scale=4, seed=3)
    dm = PairDataModule((lr[:24], hr[:24]), (lr[24:], hr[24:]), batch_size=4)
    fit(config, dm, tmp_path, callbacks=[progress_for(config)], final_validation=False)


def test_epoch_bounded_run_reports_its_share_of_all_epochs(
    reported: list[tuple[str, float]], tiny: Any, tmp_path: Any
) -> None:
    # no iteration limit: 2 epochs = 12 iterations (not global_step's 21: 3 + 2 × 9 adversarial)
    _fit(tiny, tmp_path, {"max_iterations": None}, {"max_epochs": 2})
    total = 2 * BATCHES_PER_EPOCH
    assert reported[0] == (f"SRGAN training: iteration 0 of {total}", 0.0)
    updates = [p for what, p in reported[1:] if what == "update"]
    # every 3 iterations (log_every_n_iterations), then 100 % when fit ends
    assert updates == [round(100 * i / total, 1) for i in (3, 6, 9, 12)] + [100.0]


@pytest.mark.parametrize(
    ("max_iterations", "max_epochs", "total"),
    [(5, 2, 5), (9, None, 9), (50, 1, BATCHES_PER_EPOCH)],
)
def test_total_is_the_first_limit_reached(
    max_iterations: int,
    max_epochs: int | None,
    total: int,
    reported: list[tuple[str, float]],
    tiny: Any,
    tmp_path: Any,
) -> None:
    _fit(tiny, tmp_path, {"max_iterations": max_iterations}, {"max_epochs": max_epochs})
    assert reported[0][0] == f"SRGAN training: iteration 0 of {total}"
    first_update = next(p for what, p in reported[1:] if what == "update")
    assert first_update == round(100 * 3 / total, 1)
