"""One writer per run folder, and a finished run that stays as it is when run again.

Broken by hand once each: without the finished-run check the re-run rotates ``last.ckpt`` and
appends to ``metrics.csv`` (``test_a_finished_run_run_again_writes_nothing`` fails); without the
lease the second owner trains (``test_a_second_owner_is_refused_before_anything_is_written``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from datasets.lease import Lease, LeaseHeldError, LeaseLostError
from srgan.checkpointing import load_checkpoint
from srgan.run_folder import LEASE_NAME
from srgan.train import fit


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("schedule", "trainer"),
    [({"max_iterations": 8}, {}), ({"max_iterations": None}, {"max_epochs": 1})],
    ids=["iterations", "epochs"],
)
def test_a_finished_run_run_again_writes_nothing(
    make_config, datamodule, tmp_path, caplog, schedule, trainer
):
    config = make_config(schedule=schedule, trainer=trainer)
    first = fit(config, datamodule, tmp_path)
    before = _files(tmp_path)
    assert {"checkpoints/last.ckpt", "logs/metrics.csv"} <= set(before)
    assert LEASE_NAME not in before  # released when the fit ended

    with caplog.at_level(logging.INFO, logger="srgan.fit_result"):
        again = fit(config, datamodule, tmp_path)

    assert _files(tmp_path) == before
    assert again.already_finished and again.iteration == first.iteration
    assert again.last_checkpoint == first.last_checkpoint
    assert again.best_checkpoint == first.best_checkpoint
    assert again.metric_history == first.metric_history
    assert any("is finished" in m and "nothing was written" in m for m in caplog.messages)


def test_a_higher_limit_trains_on(make_config, datamodule, tmp_path):
    fit(make_config(schedule={"max_iterations": 8}), datamodule, tmp_path, final_validation=False)
    more = fit(
        make_config(schedule={"max_iterations": 12}), datamodule, tmp_path, final_validation=False
    )
    assert not more.already_finished and more.iteration == 12
    assert load_checkpoint(more.last_checkpoint)["srgan"]["iteration"] == 12


def test_a_second_owner_is_refused_before_anything_is_written(make_config, datamodule, tmp_path):
    run_dir = tmp_path / "run"
    holder = Lease(str(run_dir / LEASE_NAME), "flow run 1234", what="run folder").acquire()
    try:
        with pytest.raises(LeaseHeldError) as refused:
            fit(make_config(), datamodule, run_dir, owner="flow run 5678")
        assert "flow run 1234" in str(refused.value) and str(run_dir) in str(refused.value)
        assert "\n" not in str(refused.value)
        assert sorted(_files(run_dir)) == [LEASE_NAME]

        # a retry of the same flow run takes the folder over from its crashed attempt
        resumed = fit(make_config(), datamodule, run_dir, owner="flow run 1234")
        assert resumed.iteration == 10
    finally:
        holder.release()
    assert not (run_dir / LEASE_NAME).exists()


def test_a_run_that_lost_its_folder_writes_no_checkpoint_on_the_way_out(tmp_path):
    from srgan.checkpointing import IterationCheckpoint

    callback = IterationCheckpoint(tmp_path / "checkpoints", 4)
    lost = LeaseLostError("the lease of run folder x was taken over")
    callback.on_exception(None, None, lost)  # type: ignore[arg-type]  # returns before using them
    assert not (tmp_path / "checkpoints").exists()
