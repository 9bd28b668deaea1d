"""Data-parallel training: rank shards of the sampler, the DDP strategy, and a 2-process gloo run.

The end-to-end test starts two CPU processes with ``torch.distributed.run`` (the launcher a
multi-node job uses too), trains through pretraining and the adversarial phase, resumes from a
mid-run checkpoint, and compares with one process on the doubled batch.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from toy_data import make_pairs

from datasets.loader import EpochKeyedSampler, ResumableDataLoader
from srgan.checkpointing import load_checkpoint
from srgan.config import ConfigError, TrainerConfig
from srgan.metrics import bicubic_upsample
from srgan.train import build_trainer, trainer_strategy

TESTS_DIR = Path(__file__).resolve().parents[1]


def _keys(sampler):
    return [index for index, _ in sampler]


@pytest.mark.parametrize("length", [32, 35])
def test_replica_shares_are_disjoint_equal_and_interleave_the_single_order(length):
    single = _keys(EpochKeyedSampler(length, shuffle=True, seed=5))
    shares = [_keys(EpochKeyedSampler(length, True, 5, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shares] == [length // 3] * 3
    assert len({i for s in shares for i in s}) == 3 * (length // 3)
    # batch k of all replicas (b=2 each) holds the samples of single-process batch k (b=6)
    for k in range(length // 6):
        together = {i for s in shares for i in s[2 * k : 2 * k + 2]}
        assert together == set(single[6 * k : 6 * k + 6])


def test_sampler_reads_rank_and_world_size_from_torch_distributed(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    sampler = EpochKeyedSampler(10, shuffle=False)
    assert (sampler.num_replicas, sampler.rank) == (2, 1)
    assert _keys(sampler) == [1, 3, 5, 7, 9]


def test_sampler_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="0 <= rank < num_replicas"):
        EpochKeyedSampler(10, shuffle=False, num_replicas=2, rank=2)


class KeyIndex(torch.utils.data.Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, key):
        return key[0]


def test_replica_loader_resumes_inside_its_own_share():
    data = KeyIndex()
    loader = ResumableDataLoader(data, batch_size=2, shuffle=True, seed=1, num_replicas=2, rank=1)
    assert len(loader) == 5
    full = [b.tolist() for b in loader]
    resumed = ResumableDataLoader(data, batch_size=2, shuffle=True, seed=1, num_replicas=2, rank=1)
    resumed.load_state_dict({"epoch": 0, "position": 2})
    assert [b.tolist() for b in resumed] == full[2:]


@pytest.mark.parametrize(
    ("strategy", "devices"),
    [("ddp", 2), ("ddp_find_unused_parameters_true", 2), ("auto", 2)],
)
def test_ddp_names_detect_unused_parameters(strategy, devices, make_config, tmp_path):
    cfg = make_config(trainer={"accelerator": "cpu", "devices": devices, "strategy": strategy})
    assert isinstance(trainer_strategy(cfg.trainer), DDPStrategy)
    trainer, _ = build_trainer(cfg, tmp_path)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2
    assert trainer.strategy._ddp_kwargs == {"find_unused_parameters": True}


def test_single_device_and_other_strategies_pass_through():
    assert trainer_strategy(TrainerConfig(accelerator="cpu")) == "auto"
    assert trainer_strategy(TrainerConfig(strategy="fsdp", devices=2)) == "fsdp"


def test_ddp_without_unused_parameter_detection_is_refused():
    with pytest.raises(ConfigError, match="Use 'ddp'"):
        trainer_strategy(TrainerConfig(strategy="ddp_find_unused_parameters_false"))


@pytest.mark.parametrize(
    "strategy",
    ["ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_spawn_find_unused_parameters_true"],
)
def test_spawning_ddp_strategies_are_refused(strategy, make_config, tmp_path):
    # their ranks are child processes: the fit's iteration counter and FitResult stay there
    cfg = make_config(trainer={"accelerator": "cpu", "devices": 2, "strategy": strategy})
    with pytest.raises(ConfigError, match=r"(?s)child processes.*Use 'ddp'.*torchrun"):
        build_trainer(cfg, tmp_path)


WORKER = textwrap.dedent(
    """
    import os
    import shutil
    import sys
    from pathlib import Path

    import torch
    from lightning.pytorch import Callback
    from toy_data import PairDataModule, make_pairs

    from srgan.config import load_config
    from srgan.train import fit

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


    class DumpState(Callback):
        def __init__(self, name):
            self.name = name

        def on_train_end(self, trainer, pl_module):
            state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            record = {"state": state, "iteration": pl_module.iteration}
            record["val"] = dict(pl_module.last_val_metrics)
            torch.save(record, out / f"{self.name}-world{world}-rank{trainer.global_rank}.pt")


    # BatchNorm-free G and D: with batch norm a rank normalises over its own half batch, so DDP
    # would train another model than one process on the whole batch.
    config = load_config(
        "cpu-tiny",
        {
            "generator": {"block": "res", "channels": 8, "n_blocks": 1},
            "discriminator": {
                "base_channels": 8, "n_blocks": 2, "pool_size": 2, "fc_features": 16,
                "spectral_norm": True,
            },
            "schedule": {"pretrain_iterations": 3, "ramp_iterations": 2, "max_iterations": 10},
            "ema": {"start_iteration": 2, "decay": 0.9},
            "optim": {"generator": {"warmup_iterations": 0}},
            "validation": {"every_n_iterations": 5, "train_metrics_every": 2},
            "trainer": {
                "accelerator": "cpu", "devices": world, "strategy": "ddp" if world > 1 else "auto",
                "checkpoint_every_n_iterations": 4, "log_every_n_iterations": 1,
            },
        },
    )
    lr, hr = make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)
    # 8 samples per iteration in all: 4 per rank under DDP, 8 in one process
    dm = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=8 // world, augment=True)
    straight = out / f"straight-world{world}"
    fit(config, dm, straight, callbacks=[DumpState("straight")], final_validation=False)
    if world > 1:
        # resume a new run from the checkpoint the straight run wrote at iteration 8
        ckpt_dir = out / "resumed" / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        copy = ckpt_dir / f".copy-{rank}"
        shutil.copy(straight / "checkpoints" / "last-previous.ckpt", copy)
        copy.replace(ckpt_dir / "last.ckpt")
        result = fit(config, dm, ckpt_dir.parent, callbacks=[DumpState("resumed")],
                     final_validation=False)
        assert result.resumed_from is not None
    """
)


def _run(args: list[str]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _networks(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix) and v.is_floating_point()}


@pytest.mark.slow
def test_ddp_on_two_processes_matches_one_process_and_resumes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    dist = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*dist, str(script), str(tmp_path)])
    _run([str(script), str(tmp_path)])

    ranks = [_state(tmp_path / f"straight-world2-rank{r}.pt") for r in (0, 1)]
    resumed = [_state(tmp_path / f"resumed-world2-rank{r}.pt") for r in (0, 1)]
    single = _state(tmp_path / "straight-world1-rank0.pt")
    assert [r["iteration"] for r in (*ranks, *resumed, single)] == [10] * 5

    # gradients are averaged, EMA updated and the validation metrics reduced on every rank alike
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert ranks[0]["val"] == ranks[1]["val"] and "val_metrics/l1" in ranks[0]["val"]
    # resuming from the iteration-8 checkpoint lands on the straight run's weights, bit for bit
    for rank in (0, 1):
        for key, value in ranks[0]["state"].items():
            assert torch.equal(value, resumed[rank]["state"][key]), key

    # The checkpoint is written once (rank 0) and holds the EMA every rank computed.
    ckpt_dir = tmp_path / "straight-world2" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        "best.ckpt",
        "last-previous.ckpt",
        "last.ckpt",
    ]
    saved = load_checkpoint(ckpt_dir / "last.ckpt")
    assert saved["srgan"]["iteration"] == 10
    for key, value in _networks(ranks[0]["state"], "ema.").items():
        assert torch.equal(saved["state_dict"][key], value), key

    # Two ranks on 4 samples each equal one process on the same 8: BN-free nets, mean losses,
    # averaged gradients. Summation order differs, and Adam's normalised steps carry that
    # rounding to ~1e-5 after 10 iterations; a gradient that is lost or mixed up moves weights
    # by ~lr = 1e-3 in the first step.
    for prefix in ("generator.", "discriminator.", "ema."):
        for key, value in _networks(ranks[0]["state"], prefix).items():
            torch.testing.assert_close(value, single["state"][key], rtol=0, atol=2e-4, msg=key)
    # each rank validated half of the val set; the reduced metrics are those of all of it
    for name, value in single["val"].items():
        assert ranks[0]["val"][name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
    lr, hr = (t[32:] for t in make_pairs(40, bands=4, hr_size=16, scale=4, seed=3))
    half_l1 = (bicubic_upsample(lr[::2], 4).clamp(0, 1) - hr[::2]).abs().mean().item()
    assert half_l1 != pytest.approx(ranks[0]["val"]["val_metrics/bicubic_l1"], rel=1e-2)
