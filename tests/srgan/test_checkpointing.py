"""``find_resume_checkpoint``: a run whose checkpoints all fail to load stops, it never restarts."""

import shutil
from pathlib import Path

import pytest

from srgan.checkpointing import LAST, PREVIOUS, CheckpointError, find_resume_checkpoint
from srgan.train import fit


def _damage(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


@pytest.mark.parametrize("names", [(LAST, PREVIOUS), (LAST,), (PREVIOUS,)])
def test_checkpoints_that_all_fail_to_load_raise_and_stay(names, tmp_path):
    for name in names:
        (tmp_path / name).write_bytes(b"not a checkpoint")
    with (
        pytest.warns(UserWarning, match="skipping unusable checkpoint"),
        pytest.raises(CheckpointError, match="none of them loads") as raised,
    ):
        find_resume_checkpoint(tmp_path)
    for name in names:
        assert str(tmp_path / name) in str(raised.value)
        assert (tmp_path / name).read_bytes() == b"not a checkpoint"


def test_fit_refuses_to_restart_a_run_whose_checkpoints_are_all_damaged(
    make_config, datamodule, tmp_path
):
    fit(make_config(), datamodule, tmp_path, final_validation=False)
    ckpt_dir = tmp_path / "checkpoints"
    for name in (LAST, PREVIOUS):
        _damage(ckpt_dir / name)
    damaged = {name: (ckpt_dir / name).read_bytes() for name in (LAST, PREVIOUS)}
    logs = tmp_path / "logs" / "metrics.csv"
    logged = logs.read_text()

    with (
        pytest.warns(UserWarning, match="skipping unusable checkpoint"),
        pytest.raises(CheckpointError, match=r"(?s)last\.ckpt.*last-previous\.ckpt"),
    ):
        fit(make_config(), datamodule, tmp_path, final_validation=False)

    # no training happened: the damaged files are untouched and nothing new was logged
    assert {name: (ckpt_dir / name).read_bytes() for name in damaged} == damaged
    assert logs.read_text() == logged


def test_one_good_checkpoint_is_enough(make_config, datamodule, tmp_path):
    fit(make_config(), datamodule, tmp_path, final_validation=False)
    ckpt_dir = tmp_path / "checkpoints"
    shutil.copy(ckpt_dir / LAST, ckpt_dir / PREVIOUS)
    _damage(ckpt_dir / LAST)
    with pytest.warns(UserWarning, match="skipping unusable checkpoint"):
        assert find_resume_checkpoint(ckpt_dir) == str(ckpt_dir / PREVIOUS)
