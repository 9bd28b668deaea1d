"""Checkpoints under faults: a SIGKILL inside a write, a damaged ``last.ckpt`` that must never
become the backup, and files holding pickled code, refused at every entry point.

Each promise was broken once by hand to see its test fail: rotating ``last.ckpt`` into the
backup slot unconditionally fails ``test_a_damaged_last_checkpoint_never_becomes_the_backup``;
not removing stale temporary files fails ``test_kill_at_the_rename_resumes_from_a_good_checkpoint``;
passing torch's message through fails ``test_pickled_code_is_refused_naming_the_global``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback

from srgan.checkpointing import (
    LAST,
    PREVIOUS,
    CheckpointError,
    find_resume_checkpoint,
    load_checkpoint,
)
from srgan.inference import load_inference_model
from srgan.train import fit, warm_start

TESTS = Path(__file__).resolve().parents[1]


def _network_weights(path: str | Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)["state_dict"]
    return {k: v for k, v in state.items() if k.split(".")[0] in {"generator", "ema"}}


class StartIteration(Callback):
    def __init__(self) -> None:
        self.iteration: int | None = None

    def on_train_start(self, trainer, pl_module):
        self.iteration = int(pl_module.iteration)


def test_kill_at_the_rename_resumes_from_a_good_checkpoint(
    make_config, datamodule, tmp_path, caplog
):
    cfg = make_config(schedule={"max_iterations": 12})
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run_dir = tmp_path / "run"
    # saves at 4 and 8: the first rotation (at 8) is killed after last.ckpt (4) became the
    # backup and before the new file (8) was renamed to last.ckpt
    child = subprocess.run(
        [
            sys.executable,
            str(TESTS / "srgan" / "kill_at_rename.py"),
            str(config_path),
            str(run_dir),
            "1",
        ],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-3000:]
    ckpt_dir = run_dir / "checkpoints"
    assert not (ckpt_dir / LAST).exists() and (ckpt_dir / PREVIOUS).exists()
    assert [p.name for p in ckpt_dir.glob(".last-*.tmp")] == [".last-8.tmp"]

    start = StartIteration()
    with caplog.at_level("WARNING", logger="srgan.checkpointing"):
        resumed = fit(cfg, datamodule, run_dir, callbacks=[start], final_validation=False)

    assert resumed.resumed_from == str(ckpt_dir / PREVIOUS) and start.iteration == 4
    assert not list(ckpt_dir.glob(".last-*.tmp"))
    assert any(".last-8.tmp" in m and "interrupted" in m for m in caplog.messages)
    straight = fit(cfg, datamodule, tmp_path / "straight", final_validation=False)
    weights, reference = (
        _network_weights(resumed.last_checkpoint),
        _network_weights(straight.last_checkpoint),
    )
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in weights)


class BackupLoads(Callback):
    """After every batch: whether ``last-previous.ckpt`` loads (None while it does not exist)."""

    def __init__(self, ckpt_dir: Path) -> None:
        self.ckpt_dir = ckpt_dir
        self.seen: list[tuple[int, bool | None]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        backup = self.ckpt_dir / PREVIOUS
        if not backup.exists():
            self.seen.append((int(pl_module.iteration), None))
            return
        try:
            load_checkpoint(backup)
        except CheckpointError:
            self.seen.append((int(pl_module.iteration), False))
        else:
            self.seen.append((int(pl_module.iteration), True))


def test_a_damaged_last_checkpoint_never_becomes_the_backup(make_config, datamodule, tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    fit(make_config(schedule={"max_iterations": 8}), datamodule, tmp_path, final_validation=False)
    last = ckpt_dir / LAST
    # the run ended at 8 (periodic save, then the final one): tear the final one
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])

    watch = BackupLoads(ckpt_dir)
    with pytest.warns(UserWarning, match="skipping unusable checkpoint"):
        result = fit(
            make_config(schedule={"max_iterations": 16}),
            datamodule,
            tmp_path,
            callbacks=[watch],
            final_validation=False,
        )

    assert result.resumed_from == str(ckpt_dir / PREVIOUS)
    # the fallback resumed at 8; periodic saves at 12 and 16: the backup loads after each
    saves = [(i, ok) for i, ok in watch.seen if i % 4 == 0]
    assert [i for i, _ in saves] == [12, 16] and all(ok for _, ok in saves), watch.seen
    assert load_checkpoint(ckpt_dir / PREVIOUS)["srgan"]["iteration"] in (12, 16)


class _RunsCode:
    """An object whose unpickling would run ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path: Path, tiny_checkpoint: str) -> tuple[Path, Path]:
    """A real checkpoint with a pickled ``os.system`` call added; and the file it would touch."""
    marker = tmp_path / "payload-ran"
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    checkpoint["extra"] = _RunsCode(marker)
    path = tmp_path / "run" / "checkpoints" / LAST
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path, marker


def _assert_refusal(message: str, path: Path) -> None:
    assert str(path) in message and "not allowed" in message
    assert "system" in message  # the offending global, posix.system or os.system
    assert "weights_only" not in message and "\n" not in message


def test_pickled_code_is_refused_naming_the_global(malicious, make_config):
    path, marker = malicious
    with pytest.raises(CheckpointError) as direct:
        load_checkpoint(path)
    _assert_refusal(str(direct.value), path)

    with pytest.raises(CheckpointError) as inference:
        load_inference_model(str(path))
    _assert_refusal(str(inference.value), path)

    from srgan.module import SRGANModule

    with pytest.raises(CheckpointError) as warm:
        warm_start(SRGANModule(make_config()), str(path))
    _assert_refusal(str(warm.value), path)

    with (
        pytest.warns(UserWarning, match="not allowed") as warned,
        pytest.raises(CheckpointError, match="none of them loads") as resume,
    ):
        find_resume_checkpoint(path.parent)
    assert "weights_only" not in str(resume.value)
    assert all("weights_only" not in str(w.message) for w in warned)
    assert not marker.exists()
