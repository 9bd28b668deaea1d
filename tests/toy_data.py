"""Structured multispectral imagery for training tests: shapes with distinct spectra, not noise.

Scenes are piecewise-smooth (rectangles, discs and stripes with per-band reflectances, a gentle
illumination gradient), so a super-resolution network has edges to learn and bicubic blurs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import Dataset

from datasets.loader import ResumableDataLoader, SampleKey


def structured_scene(size: int, bands: int, seed: int) -> np.ndarray:
    """``(bands, size, size)`` float32 reflectances in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    scene = np.empty((bands, size, size), np.float32)
    base = rng.uniform(0.05, 0.2, bands).astype(np.float32)
    scene[:] = base[:, None, None] * (0.8 + 0.4 * xx[None])
    for _ in range(size // 4):
        spectrum = rng.uniform(0.05, 0.9, bands).astype(np.float32)
        kind = rng.integers(3)
        cy, cx = rng.uniform(0, 1, 2)
        r = rng.uniform(0.02, 0.12)
        if kind == 0:
            mask = (abs(yy - cy) < r) & (abs(xx - cx) < r * rng.uniform(0.3, 2))
        elif kind == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        else:
            mask = (np.sin((xx * rng.uniform(-1, 1) + yy) * rng.uniform(20, 60)) > 0.6) & (
                abs(xx - cx) < 2 * r
            )
        scene[:, mask] = spectrum[:, None]
    return scene


def make_pairs(
    n: int, bands: int = 4, hr_size: int = 32, scale: int = 4, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``n`` (lr, hr) pairs cut from structured scenes; LR is the area average of HR."""
    per_scene = (128 // hr_size) ** 2
    patches = []
    for s in range(-(-n // per_scene)):
        scene = torch.from_numpy(structured_scene(128, bands, seed * 1000 + s))
        tiles = scene.unfold(1, hr_size, hr_size).unfold(2, hr_size, hr_size)
        patches.append(tiles.permute(1, 2, 0, 3, 4).reshape(-1, bands, hr_size, hr_size))
    hr = torch.cat(patches)[:n].contiguous()
    lr = F.avg_pool2d(hr, scale)
    return lr, hr


class PairDataset(Dataset[tuple[Tensor, Tensor]]):
    """In-memory pairs indexed by ``(index, epoch)`` keys, with keyed flip augmentation."""

    def __init__(self, lr: Tensor, hr: Tensor, augment: bool = False, seed: int = 0) -> None:
        self.lr, self.hr, self.augment, self.seed = lr, hr, augment, seed

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, key: SampleKey | int) -> tuple[Tensor, Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        lr, hr = self.lr[index], self.hr[index]
        if self.augment and np.random.default_rng((self.seed, epoch, index)).random() < 0.5:
            lr, hr = lr.flip(-1), hr.flip(-1)
        return lr, hr


class PairDataModule(LightningDataModule):
    """Train/val DataModule over in-memory pairs."""

    def __init__(
        self,
        train: tuple[Tensor, Tensor],
        val: tuple[Tensor, Tensor],
        batch_size: int = 4,
        augment: bool = False,
    ) -> None:
        super().__init__()
        self.train, self.val, self.batch_size, self.augment = train, val, batch_size, augment

    def train_dataloader(self) -> ResumableDataLoader:
        return ResumableDataLoader(
            PairDataset(*self.train, augment=self.augment),
            self.batch_size,
            shuffle=True,
            seed=7,
            drop_last=True,
        )

    def val_dataloader(self) -> ResumableDataLoader:
        return ResumableDataLoader(PairDataset(*self.val), self.batch_size)


#: A 10-iteration run of a tiny SRGAN (about 1 s): pretraining 3, EMA from iteration 2.
TINY_RUN = {
    "data": {"batch_size": 4, "num_workers": 0},
    "generator": {"channels": 8, "n_blocks": 1},
    "discriminator": {"base_channels": 8, "n_blocks": 2, "pool_size": 2, "fc_features": 16},
    "schedule": {"pretrain_iterations": 3, "ramp_iterations": 4, "max_iterations": 10},
    "ema": {"start_iteration": 2, "decay": 0.9},
    "validation": {"every_n_iterations": 5},
}


def tiny_checkpoint(run_dir: str | Path) -> str:
    """Train :data:`TINY_RUN` on toy ×4 pairs of B02, B03, B04, B08; its ``last.ckpt``."""
    from srgan.config import load_config
    from srgan.train import fit

    torch.set_num_threads(1)
    lr, hr = make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)
    datamodule = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4)
    result = fit(load_config("cpu-tiny", TINY_RUN), datamodule, run_dir)
    assert result.last_checkpoint is not None
    return result.last_checkpoint
