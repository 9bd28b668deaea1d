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


@pytest.mark.parametrize("last_loads", [True, False])
def test_a_new_checkpoint_keeps_a_loadable_last_as_the_backup_only(tmp_path, last_loads):
    """Publishing a new checkpoint in a fresh process (nothing known about ``last.ckpt``):
    a ``last.ckpt`` that loads becomes the backup; a damaged one is replaced and the backup
    kept. Fails if ``last.ckpt`` is rotated without being checked, or never rotated."""
    import fsspec
    import torch

    from srgan.checkpointing import IterationCheckpoint

    def checkpoint(path: Path, iteration: int) -> None:
        torch.save({"state_dict": {"w": torch.tensor([float(iteration)])}}, path)

    checkpoint(tmp_path / PREVIOUS, 4)
    if last_loads:
        checkpoint(tmp_path / LAST, 8)
    else:
        (tmp_path / LAST).write_bytes(b"truncated")
    checkpoint(tmp_path / ".last-12.tmp", 12)
    callback = IterationCheckpoint(tmp_path, every_n_iterations=4)
    fs, root = fsspec.core.url_to_fs(str(tmp_path))
    callback._publish(fs, root, str(tmp_path / ".last-12.tmp"))

    def iteration(name: str) -> float:
        return float(torch.load(tmp_path / name, weights_only=True)["state_dict"]["w"])

    assert iteration(LAST) == 12 and callback.last_loads is True
    assert iteration(PREVIOUS) == (8 if last_loads else 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LAST, PREVIOUS])
