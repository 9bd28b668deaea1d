"""Do the speed switches change what training computes? Same seed, switch on vs. off.

Each switch trains the same small SRGAN (5 pretraining + 15 adversarial iterations, fixed seed,
fixed batches) and is compared with the run without it: the relative difference of the logged
losses at the first adversarial iteration (one step away from identical weights) and over the
whole run, and the relative L2 distance of the final generator and discriminator weights. As a
yardstick for "the same up to float rounding", the same comparison is made between 2 threads and
1 thread, which only reorders float sums; GAN training amplifies any such difference over
iterations, so the yardstick, not zero, is the bar.

Run alone: ``python -m bench equivalence``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from bench import report
from bench.system import machine

ITERATIONS = 20
LOSS_KEYS = (
    "generator/content_loss",
    "generator/adversarial_loss",
    "discriminator/adversarial_loss",
)
BASE: dict[str, Any] = {
    "data": {"batch_size": 4, "num_workers": 0},
    "generator": {"block": "standard", "channels": 16, "n_blocks": 2, "bicubic_skip": False},
    "discriminator": {"base_channels": 16, "n_blocks": 4, "pool_size": 4, "fc_features": 64},
    "schedule": {"pretrain_iterations": 5, "ramp_iterations": 0, "max_iterations": ITERATIONS},
    "ema": {"enabled": False},
    "validation": {"every_n_iterations": 10**9, "train_metrics_every": 10**9},
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "precision": "32-true",
        "checkpoint_every_n_iterations": 10**9,
        "log_every_n_iterations": 10**9,
        "channels_last": False,
        "retain_freed_memory": False,
    },
    "optim": {"fused": False},
}
#: name -> (config overrides, threads) compared with BASE at 2 threads.
SWITCHES: dict[str, tuple[dict[str, Any], int]] = {
    "1 thread instead of 2 (yardstick)": ({}, 1),
    "trainer.channels_last": ({"trainer": {"channels_last": True}}, 2),
    "optim.fused": ({"optim": {"fused": True}}, 2),
    "trainer.retain_freed_memory": ({"trainer": {"retain_freed_memory": True}}, 2),
    "all three defaults together": (
        {"trainer": {"channels_last": True, "retain_freed_memory": True}, "optim": {"fused": True}},
        2,
    ),
    "discriminator.joint_real_fake": ({"discriminator": {"joint_real_fake": True}}, 2),
}


class _Losses(Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.steps.append({k: float(trainer.callback_metrics[k]) for k in LOSS_KEYS})


def train(overrides: dict[str, Any], threads: int) -> tuple[list[dict[str, float]], dict]:
    """Train the small SRGAN; returns the per-iteration losses and the final weights."""
    from srgan.config import deep_merge, load_config
    from srgan.module import SRGANModule
    from srgan.train import build_trainer

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cfg = load_config("cpu-tiny", deep_merge(BASE, overrides))
        lightning.seed_everything(0, verbose=False)
        hr = torch.rand(4 * (ITERATIONS + 1), 4, 64, 64)
        lr = torch.nn.functional.avg_pool2d(hr, 4)
        module, losses = SRGANModule(cfg), _Losses()
        with tempfile.TemporaryDirectory(prefix="s2sr-bench-eq-") as run_dir:
            trainer, _ = build_trainer(cfg, run_dir, callbacks=[losses])
            trainer.fit(module, DataLoader(TensorDataset(lr, hr), batch_size=4))
        weights = {
            k: v.detach().clone().contiguous()
            for k, v in module.state_dict().items()
            if k.split(".")[0] in {"generator", "discriminator"} and v.is_floating_point()
        }
        return losses.steps, weights
    finally:
        torch.set_num_threads(previous)


def _relative_l2(a: dict[str, Tensor], b: dict[str, Tensor], net: str) -> float:
    keys = [k for k in a if k.startswith(f"{net}.")]
    diff = torch.cat([(a[k] - b[k]).flatten() for k in keys]).norm()
    return float(diff / torch.cat([a[k].flatten() for k in keys]).norm())


def _relative_loss(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in LOSS_KEYS)


def compare(switches: dict[str, tuple[dict[str, Any], int]] = SWITCHES) -> list[dict[str, Any]]:
    """One row per switch: loss and weight differences against the run with all switches off."""
    ref_losses, ref_weights = train({}, 2)
    first_adversarial = int(BASE["schedule"]["pretrain_iterations"])
    rows = []
    for name, (overrides, threads) in switches.items():
        losses, weights = train(overrides, threads)
        rows.append(
            {
                "switch": name,
                "first_adversarial_loss_difference": _relative_loss(
                    ref_losses[first_adversarial], losses[first_adversarial]
                ),
                "max_loss_difference": max(
                    _relative_loss(a, b) for a, b in zip(ref_losses, losses, strict=True)
                ),
                "generator_weight_difference": _relative_l2(ref_weights, weights, "generator"),
                "discriminator_weight_difference": _relative_l2(
                    ref_weights, weights, "discriminator"
                ),
                "bit_identical": ref_losses == losses
                and all(torch.equal(ref_weights[k], weights[k]) for k in ref_weights),
            }
        )
    return rows


def render(payload: dict[str, Any]) -> str:
    """Markdown table of the comparison."""
    lines = [
        f"Command: `{payload['command']}` ({payload['created']}). Small SRGAN, {ITERATIONS} "
        "iterations (5 pretraining), same seed and batches; each row against all switches off. "
        "Loss differences are relative (largest over the logged losses); weight differences are "
        "relative L2 distances after the last iteration.",
        "",
        "| switch on | loss Δ, 1st adversarial it. | loss Δ, worst it. | G weights Δ | D weights Δ"
        " | bit-identical |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        same = "yes" if r["bit_identical"] else "no"
        lines.append(
            f"| `{r['switch']}` | {r['first_adversarial_loss_difference']:.1e}"
            f" | {r['max_loss_difference']:.1e} | {r['generator_weight_difference']:.1e}"
            f" | {r['discriminator_weight_difference']:.1e} | {same} |"
        )
    return "\n".join(lines)


def run_equivalence(command: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compare every switch; write JSON and the RESULTS.md block."""
    payload = {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "rows": compare(),
    }
    report.write_json("equivalence", payload)
    report.update_results_md("equivalence", render(payload))
    log(render(payload))
    return payload
