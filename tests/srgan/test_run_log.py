"""``metrics.csv`` of a run: appended across attempts, widened when a column appears."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from srgan.run_log import RunCSVLogger


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_a_second_attempt_appends_to_the_first(tmp_path: Path) -> None:
    first = RunCSVLogger(str(tmp_path), flush_every=2)
    for step in range(3):
        first.log_metrics({"loss": torch.tensor(float(step))}, step)
    first.finalize("failed")
    second = RunCSVLogger(str(tmp_path))
    second.log_metrics({"loss": 9.0}, 2)
    second.finalize("success")
    assert [(r["step"], r["loss"]) for r in _rows(tmp_path)] == [
        ("0", "0.0"),
        ("1", "1.0"),
        ("2", "2.0"),
        ("2", "9.0"),
    ]


def test_a_new_column_widens_the_file(tmp_path: Path) -> None:
    logger = RunCSVLogger(str(tmp_path), flush_every=1)
    logger.log_metrics({"loss": 1.0}, 0)
    logger.log_metrics({"loss": 0.5, "val/psnr": 30.0}, 1)
    logger.log_metrics({"loss": 0.25}, 2)
    rows = _rows(tmp_path)
    assert list(rows[0]) == ["loss", "step", "val/psnr"]
    assert [r["val/psnr"] for r in rows] == ["", "30.0", ""]


def test_hyperparameters_are_saved_beside(tmp_path: Path) -> None:
    RunCSVLogger(str(tmp_path)).log_hyperparams({"config": {"scale": 4}})
    assert "scale: 4" in (tmp_path / "logs" / "hparams.yaml").read_text()
