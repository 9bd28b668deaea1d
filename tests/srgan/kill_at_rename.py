"""Child process of ``test_checkpoint_safety``: train, and SIGKILL itself inside a checkpoint
write, after ``last.ckpt`` became the backup and before the new file took its place.

Usage: ``python kill_at_rename.py CONFIG_YAML RUN_DIR KILL_AT_SAVE``
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from toy_data import PairDataModule, make_pairs

from srgan.checkpointing import PREVIOUS
from srgan.config import load_config
from srgan.train import fit


def main(config_path: str, run_dir: str, kill_at_save: int) -> None:
    real_mv = LocalFileSystem.mv
    rotations = 0

    def mv(self: LocalFileSystem, path1: str, path2: str, **kwargs: Any) -> None:
        nonlocal rotations
        real_mv(self, path1, path2, **kwargs)
        if str(path2).endswith(PREVIOUS):
            rotations += 1
            if rotations == kill_at_save:
                os.kill(os.getpid(), signal.SIGKILL)

    LocalFileSystem.mv = mv  # type: ignore[method-assign]
    torch.set_num_threads(1)  # as the test process: its weights are compared bit for bit
    lr, hr = make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)
    datamodule = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4, augment=True)
    fit(load_config(config_path), datamodule, run_dir, final_validation=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
