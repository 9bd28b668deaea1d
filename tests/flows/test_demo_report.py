"""``deployments/demo_report.py`` reports the artifacts of the demo's own flow run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prefect import flow
from prefect_harness import PROJECT_ROOT

from srgan.config import load_config
from srgan.train import FitResult
from tasks.artifacts import register_training_artifacts

pytestmark = pytest.mark.usefixtures("prefect_api")


def _demo_report() -> ModuleType:
    path = PROJECT_ROOT / "deployments" / "demo_report.py"
    spec = importlib.util.spec_from_file_location("demo_report", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@flow
def fake_training(best: str, psnr: float) -> None:
    """Register the artifacts of a finished ``train-srgan`` run with the given results."""
    metrics = {
        "val_metrics/psnr": psnr,
        "val_metrics/bicubic_psnr": 20.0,
        "val_metrics/psnr_gain": psnr - 20.0,
    }
    result = FitResult(
        run_dir=str(Path(best).parents[1]),
        iteration=10,
        metrics=metrics,
        best_checkpoint=best,
        last_checkpoint=None,
        preview=None,
        resumed_from=None,
        seconds=1.0,
        device="cpu",
        precision="32-true",
    )
    register_training_artifacts(result, load_config("cpu-tiny", {"data": {"store": "store.zarr"}}))


def test_report_reads_the_demo_run_not_the_newest_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = fake_training(str(tmp_path / "demo/checkpoints/best.ckpt"), 31.25, return_state=True)
    # another run on the same server finishes after the demo's
    fake_training(str(tmp_path / "other/checkpoints/best.ckpt"), 27.5)
    report: Any = _demo_report()

    assert report.main("demo", str(demo.state_details.flow_run_id)) == 0

    out = capsys.readouterr().out
    assert f"best checkpoint: {tmp_path}/demo/checkpoints/best.ckpt" in out
    assert "31.25000" in out and "other" not in out and "27.5" not in out


def test_report_fails_for_a_run_without_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    report: Any = _demo_report()
    assert report.main("demo", "00000000-0000-0000-0000-000000000000") == 1
    assert "has no validation metrics artifact" in capsys.readouterr().err
