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
def test_a_new_checkpoint_keeps_a_loadable_last_as_the_backup_only(tmp_path, caplog, last_loads):
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
    with caplog.at_level("WARNING", logger="srgan.checkpointing"):
        callback._publish(fs, root, str(tmp_path / ".last-12.tmp"))
    warning = (
        f"{tmp_path}/{LAST} does not load; replacing it without making it the backup "
        f"({tmp_path}/{PREVIOUS} stays)"
    )
    assert caplog.messages == ([] if last_loads else [warning])

    def iteration(name: str) -> float:
        return float(torch.load(tmp_path / name, weights_only=True)["state_dict"]["w"])

    assert iteration(LAST) == 12 and callback.last_loads is True
    assert iteration(PREVIOUS) == (8 if last_loads else 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LAST, PREVIOUS])


def test_finished_under_reads_the_callbacks_record_only() -> None:
    """The limits a run ended under come from this callback's own state in the checkpoint;
    a periodic checkpoint, another callback's state or a malformed one say nothing."""
    from srgan.checkpointing import IterationCheckpoint, finished_under

    limits = {"max_iterations": 12, "max_epochs": None}
    key = IterationCheckpoint.__qualname__
    assert finished_under({"callbacks": {key: {"finished_under": limits}}}) == limits
    assert finished_under({"callbacks": {key: {"finished_under": None}}}) is None
    assert finished_under({"callbacks": {"Other": {"finished_under": limits}}}) is None
    assert finished_under({"callbacks": {key: ["finished_under"]}}) is None
    assert finished_under({"state_dict": {}}) is None


def test_the_callback_state_round_trips(tmp_path) -> None:
    """A resumed run knows which iteration its last checkpoint holds (so it does not write
    the same iteration twice)."""
    from srgan.checkpointing import IterationCheckpoint

    saved = IterationCheckpoint(tmp_path, every_n_iterations=4)
    saved.last_saved_iteration, saved.finished_under = 8, {"max_iterations": 8}
    resumed = IterationCheckpoint(tmp_path, every_n_iterations=4)
    resumed.load_state_dict(saved.state_dict())
    assert resumed.last_saved_iteration == 8


@pytest.mark.parametrize("in_step", [True, False, None])
def test_an_error_saves_unless_it_struck_inside_a_step(tmp_path, caplog, in_step) -> None:
    """An error between steps saves a resume point; inside a step (weights half updated) it
    keeps the last one and says so. A module without the flag is never inside a step."""
    from types import SimpleNamespace

    from srgan.checkpointing import IterationCheckpoint

    callback = IterationCheckpoint(tmp_path, every_n_iterations=4)
    saves: list[tuple[object, object]] = []
    callback._save = lambda trainer, module, **_: saves.append((trainer, module))  # type: ignore[method-assign]
    trainer = SimpleNamespace()
    module = SimpleNamespace() if in_step is None else SimpleNamespace(in_step=in_step)
    with caplog.at_level("WARNING", logger="srgan.checkpointing"):
        callback.on_exception(trainer, module, RuntimeError("boom"))  # type: ignore[arg-type]
    if in_step:
        assert saves == []
        assert caplog.messages == [
            f"error inside a training step; keeping {callback.last_path} as the resume point"
        ]
    else:
        assert saves == [(trainer, module)] and caplog.messages == []


def test_checkpoints_on_s3_load_and_their_failures_name_the_uri(
    s3_server, tiny_checkpoint, monkeypatch, tmp_path
):
    """From S3 (credentials from the environment, as on a worker): a checkpoint loads; a
    missing file and refused credentials each say which URI (and a missing local file)."""
    import s3fs

    from datasets.storage_errors import PrefixMissingError, StorageAccessDenied
    from srgan.checkpointing import load_checkpoint, remove_stale_temporaries, resume_point

    bucket = "s2sr-checkpoint-loading"
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    fs.put_file(tiny_checkpoint, f"{bucket}/run/last.ckpt")

    def environment(secret: str) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint_url"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3fs.S3FileSystem.clear_instance_cache()

    environment(s3_server["secret"])
    try:
        assert "state_dict" in load_checkpoint(f"s3://{bucket}/run/last.ckpt")
        missing = f"s3://{bucket}/run/none.ckpt"
        with pytest.raises(PrefixMissingError) as raised:
            load_checkpoint(missing)
        assert str(raised.value).startswith(f"{missing} does not exist (bucket '{bucket}' exists")
        environment("wrong-secret")
        with pytest.raises(StorageAccessDenied, match=f"s3://{bucket}/run/last.ckpt"):
            load_checkpoint(f"s3://{bucket}/run/last.ckpt")
        with pytest.raises(StorageAccessDenied, match=f"s3://{bucket}/run/last.ckpt"):
            resume_point(f"s3://{bucket}/run")
        with pytest.raises(StorageAccessDenied, match=f"s3://{bucket}/run"):
            remove_stale_temporaries(f"s3://{bucket}/run")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    local = tmp_path / "none.ckpt"
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(local)
    assert str(raised.value) == f"checkpoint {local} does not exist"


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path, caplog):
    """Only ``.last-<iteration>.tmp`` files (left by a write that was killed) go, each with a
    warning; checkpoints and look-alike names stay; a run folder not made yet has none."""
    from srgan.checkpointing import remove_stale_temporaries

    stale = [".last-12.tmp", ".last-4.tmp"]
    kept = [LAST, PREVIOUS, ".last-x.tmp", "last-12.tmp", ".last-12.tmp.bak", "a.last-1.tmp"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level("WARNING", logger="srgan.checkpointing"):
        removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / name) for name in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert sorted(caplog.messages) == sorted(
        f"removed {path}, left by a checkpoint write that was interrupted" for path in removed
    )
    assert remove_stale_temporaries(str(tmp_path / "not-yet")) == []


def test_the_data_position_is_set_in_every_resumable_loader_state():
    """The loader position recorded in a checkpoint becomes the trained batch count; states
    without a position and checkpoints without loops are left alone."""
    from srgan.checkpointing import record_data_position

    checkpoint = {
        "loops": {
            "fit_loop": {
                "state_dict": {
                    "combined_loader": [{"position": 5, "epoch": 1}, "other", {"seed": 3}]
                }
            }
        }
    }
    record_data_position(checkpoint, 4)
    states = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert states == [{"position": 4, "epoch": 1}, "other", {"seed": 3}]
    for bare in (
        {},
        {"loops": {}},
        {"loops": {"fit_loop": {}}},
        {"loops": {"fit_loop": {"state_dict": {}}}},
    ):
        record_data_position(bare, 4)  # nothing to set, no error


class _Trainer:
    """What the callback uses of a Lightning trainer: the step count, the rank and a
    checkpoint writer (each file holds the call's number)."""

    def __init__(self, global_step: int = 99, is_global_zero: bool = True) -> None:
        self.global_step, self.is_global_zero = global_step, is_global_zero
        self.saved: list[tuple[str, bool]] = []

    def save_checkpoint(self, path: str, weights_only: bool = False) -> None:
        self.saved.append((path, weights_only))
        import torch

        torch.save({"state_dict": {"call": torch.tensor(len(self.saved))}}, path)


def test_checkpoints_follow_the_modules_iteration(tmp_path, caplog):
    """Every ``every_n_iterations`` of the module's own iteration count (not the trainer's
    optimizer steps): written to ``.last-<iteration>.tmp`` in a folder made on demand, then
    renamed to ``last.ckpt`` and logged; the same iteration is written once, except at the
    end of training, which records the limits it ended under."""
    from types import SimpleNamespace

    from srgan.checkpointing import IterationCheckpoint

    folder = tmp_path / "run" / "checkpoints"
    callback = IterationCheckpoint(folder, every_n_iterations=4)
    assert callback.state_dict() == {
        "dirpath": str(folder),
        "last_saved_iteration": None,
        "finished_under": None,
    }
    trainer, module = _Trainer(global_step=99), SimpleNamespace(iteration=8)
    with caplog.at_level("INFO", logger="srgan.checkpointing"):
        callback.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    assert trainer.saved == [(f"{folder}/.last-8.tmp", False)]
    assert sorted(p.name for p in folder.iterdir()) == [LAST]
    assert caplog.messages == [f"checkpoint at iteration 8: {folder}/{LAST}"]
    for iteration in (9, 8):  # not a multiple of 4; already written
        module.iteration = iteration
        callback.on_train_batch_end(trainer, module, None, None, 0)  # type: ignore[arg-type]
    assert len(trainer.saved) == 1
    limits = {"max_iterations": 8, "max_epochs": None}
    callback.limits = limits
    callback.on_train_end(trainer, module)  # type: ignore[arg-type]
    assert trainer.saved[-1] == (f"{folder}/.last-8.tmp", False) and len(trainer.saved) == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([LAST, PREVIOUS])
    assert callback.state_dict() == {
        "dirpath": str(folder),
        "last_saved_iteration": 8,
        "finished_under": limits,
    }
    callback.on_train_start(trainer, module)  # type: ignore[arg-type]
    assert callback.finished_under is None  # a resumed run is no longer finished


def test_without_an_iteration_the_trainers_step_names_the_checkpoint(tmp_path):
    from types import SimpleNamespace

    from srgan.checkpointing import IterationCheckpoint

    callback = IterationCheckpoint(tmp_path, every_n_iterations=4)
    trainer = _Trainer(global_step=12)
    callback.on_train_batch_end(trainer, SimpleNamespace(), None, None, 0)  # type: ignore[arg-type]
    assert trainer.saved == [(f"{tmp_path}/.last-12.tmp", False)]
    callback.on_train_end(trainer, SimpleNamespace())  # type: ignore[arg-type]
    assert callback.finished_under is None  # no limits were set


def test_a_trailing_slash_is_not_doubled(tmp_path):
    from srgan.checkpointing import IterationCheckpoint

    folder = f"{tmp_path}/checkpointsX"
    assert IterationCheckpoint(f"{folder}/", 4).last_path == f"{folder}/{LAST}"


@pytest.mark.parametrize(
    ("stage", "rank_zero", "removed"),
    [("fit", True, True), ("validate", True, False), ("fit", False, False)],
)
def test_temporaries_are_cleared_when_rank_zero_starts_fitting(tmp_path, stage, rank_zero, removed):
    from srgan.checkpointing import IterationCheckpoint

    (tmp_path / ".last-4.tmp").write_bytes(b"x")
    callback = IterationCheckpoint(tmp_path, every_n_iterations=4)
    callback.setup(_Trainer(is_global_zero=rank_zero), None, stage)  # type: ignore[arg-type]
    assert (tmp_path / ".last-4.tmp").exists() is not removed


def test_each_skipped_checkpoint_is_warned_about_and_the_error_names_all(tmp_path, caplog):
    """Both files damaged: a warning per file, the same in the log, and one error naming the
    run, every file's problem and what to do."""
    from srgan.checkpointing import resume_point

    for name in (LAST, PREVIOUS):
        (tmp_path / name).write_bytes(b"not a checkpoint")
    with (
        pytest.warns(UserWarning) as warned,
        caplog.at_level("WARNING", logger="srgan.checkpointing"),
        pytest.raises(CheckpointError) as raised,
    ):
        resume_point(tmp_path)
    problems = [
        f"checkpoint {tmp_path}/{name} is damaged or not a checkpoint" for name in (LAST, PREVIOUS)
    ]
    assert len(warned) == 2
    for warning, logged, problem in zip(warned, caplog.messages, problems, strict=True):
        assert str(warning.message).startswith(f"skipping unusable checkpoint: {problem}")
        assert logged == str(warning.message)
    message = str(raised.value)
    assert message.startswith(
        f"run {tmp_path} has checkpoints but none of them loads: {problems[0]}"
    )
    assert f"; {problems[1]}" in message
    assert message.endswith(
        ". Not starting again from iteration 0; nothing was deleted. Restore a good copy of "
        f"{LAST}, or move the files aside (or train into a new run key / run directory) to "
        "start from scratch."
    )
