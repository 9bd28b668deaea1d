"""Write ``last.ckpt``: a checkpoint whose config is the flat schema of s2-srgan 0.1.0.

Up to 0.1.0 the generator and discriminator configs were one flat class each, and every
checkpoint recorded all their fields, those its family ignores included (``growth`` and
``noise_dim`` on an ``srresnet``; ``n_blocks``, ``pool_size``, ``fc_features`` on a
``patchgan``). The committed ``last.ckpt`` was written by this script with that release (commit
82ce15c); run with a later release it writes the per-family layout instead, so it is kept as
written rather than regenerated. It trains 6 iterations of an 4-channel SRResNet with a PatchGAN
on toy ×4 pairs of 4 bands (about 130 KB).

    python tests/data/flat_config/data.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for toy_data

from toy_data import PairDataModule, make_pairs  # noqa: E402

from srgan.config import load_config  # noqa: E402
from srgan.train import fit  # noqa: E402

CONFIG = {
    "data": {"batch_size": 4, "num_workers": 0},
    "generator": {
        "name": "srresnet",
        "block": "res",
        "channels": 4,
        "n_blocks": 1,
        "large_kernel": 3,
    },
    "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2},
    "schedule": {"pretrain_iterations": 3, "ramp_iterations": 2, "max_iterations": 6},
    "ema": {"start_iteration": 2, "decay": 0.9},
    "validation": {"every_n_iterations": 3},
}


def main() -> None:
    lr, hr = make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)
    datamodule = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4)
    with tempfile.TemporaryDirectory() as run_dir:
        result = fit(load_config("cpu-tiny", CONFIG), datamodule, run_dir)
        assert result.last_checkpoint is not None
        shutil.copyfile(result.last_checkpoint, HERE / "last.ckpt")


if __name__ == "__main__":
    main()
