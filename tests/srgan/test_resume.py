"""Checkpoints: exact resume, torn-write fallback, weights-only loads, non-finite losses."""

import pytest
import torch
from lightning.pytorch import Callback

from srgan.checkpointing import PREVIOUS, CheckpointError, find_resume_checkpoint, load_checkpoint
from srgan.module import NonFiniteLossError, SRGANModule
from srgan.train import fit


class FailOnce(Callback):
    """Raise once, either before the step of ``iteration`` or inside it (after the D step)."""

    def __init__(self, iteration: int, inside_step: bool = False) -> None:
        self.iteration, self.inside_step, self.fired = iteration, inside_step, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration != self.iteration or self.fired:
            return
        self.fired = True
        if not self.inside_step:
            raise RuntimeError("injected failure between steps")
        original = pl_module.untoggle_optimizer

        def fail_after_d(optimizer):
            original(optimizer)
            pl_module.untoggle_optimizer = original
            raise RuntimeError("injected failure inside the step")

        pl_module.untoggle_optimizer = fail_after_d


def _weights(path):
    state = load_checkpoint(path)["state_dict"]
    return {
        k: v for k, v in state.items() if k.split(".")[0] in {"generator", "discriminator", "ema"}
    }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("fail_at", "inside_step"), [(7, False), (6, True)])
def test_interrupted_run_resumes_to_identical_weights(
    make_config, datamodule, tmp_path, fail_at, inside_step
):
    cfg = make_config(schedule={"max_iterations": 12})
    straight = fit(cfg, datamodule, tmp_path / "straight", final_validation=False)

    run_dir = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="injected failure"):
        fit(
            cfg,
            datamodule,
            run_dir,
            callbacks=[FailOnce(fail_at, inside_step)],
            final_validation=False,
        )
    saved = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["srgan"]["iteration"]
    # between steps the failure point itself is saved; inside a step the last periodic one is kept
    assert saved == (fail_at if not inside_step else 4)

    resumed = fit(cfg, datamodule, run_dir, final_validation=False)
    assert resumed.resumed_from is not None and resumed.iteration == 12
    _assert_same(_weights(straight.last_checkpoint), _weights(resumed.last_checkpoint))
    a = load_checkpoint(straight.last_checkpoint)
    b = load_checkpoint(resumed.last_checkpoint)
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for pa, pb in zip(opt_a["state"].values(), opt_b["state"].values(), strict=True):
            assert torch.equal(pa["exp_avg"], pb["exp_avg"])


def test_checkpoint_holds_everything_needed(make_config, datamodule, tmp_path):
    result = fit(make_config(), datamodule, tmp_path, final_validation=False)
    ckpt = load_checkpoint(result.last_checkpoint)
    assert len(ckpt["optimizer_states"]) == 2
    assert len(ckpt["lr_schedulers"]) == 4
    assert ckpt["srgan"]["iteration"] == 10
    assert {"python", "numpy", "torch"} <= set(ckpt["srgan"]["rng"])
    assert any(k.startswith("ema.averaged.module.") for k in ckpt["state_dict"])
    assert ckpt["hyper_parameters"]["config"]["schedule"]["max_iterations"] == 10


def test_corrupt_last_checkpoint_falls_back_to_previous(make_config, datamodule, tmp_path):
    result = fit(make_config(), datamodule, tmp_path, final_validation=False)
    ckpt_dir = tmp_path / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    with pytest.warns(UserWarning, match="skipping unusable checkpoint"):
        chosen = find_resume_checkpoint(ckpt_dir)
    assert chosen is not None and chosen.endswith(PREVIOUS)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(last)
    assert result.iteration == 10


def test_no_checkpoint_means_fresh_start(tmp_path):
    assert find_resume_checkpoint(tmp_path / "nothing") is None


def test_weights_only_load_keeps_ema(make_config, datamodule, tmp_path):
    result = fit(make_config(), datamodule, tmp_path, final_validation=False)
    module = SRGANModule.load_from_checkpoint(result.last_checkpoint, weights_only=True)
    state = load_checkpoint(result.last_checkpoint)["state_dict"]
    for key, value in module.ema.module.state_dict().items():
        assert torch.equal(value, state[f"ema.averaged.module.{key}"])
    assert module.iteration == 10
    lr = torch.rand(1, 4, 4, 4)
    assert torch.equal(module.eval()(lr), module.ema.module(lr))


def test_non_finite_loss_stops_with_named_term(make_config, toy_pairs, tmp_path):
    from toy_data import PairDataModule

    lr, hr = toy_pairs[0].clone(), toy_pairs[1].clone()
    hr[:] = float("nan")
    dm = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4)
    with pytest.raises(NonFiniteLossError, match=r"generator/content_loss at iteration 0"):
        fit(make_config(), dm, tmp_path, final_validation=False)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_non_finite_loss_keeps_the_last_good_checkpoint(make_config, datamodule, tmp_path):
    class PoisonBatch(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.iteration == 5:
                batch[1].fill_(float("nan"))

    # checkpoints every 4 iterations: the good one is iteration 4; the NaN comes at 5
    with pytest.raises(NonFiniteLossError, match=r"at iteration 5"):
        fit(make_config(), datamodule, tmp_path, callbacks=[PoisonBatch()], final_validation=False)
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["srgan"]["iteration"] == 4
    weights = checkpoint["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
