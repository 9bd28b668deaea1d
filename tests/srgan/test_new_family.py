"""Adding a generator family is one new file plus one registry entry.

The test makes exactly that change, in a copy of the libraries: it writes
``srgan/models/tiny.py`` (a network and its config) and adds the family to ``GENERATORS`` in
``srgan/models/__init__.py`` (its import and one line). Nothing else is edited. In a fresh
interpreter on that copy, the new family is then configurable by name, refuses keys it does not
take, trains, checkpoints and loads for inference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY_FAMILY = '''"""Tiny: two convs and a pixel shuffle."""

from typing import Literal

from pydantic import Field
from torch import Tensor, nn

from srgan.models.family import GeneratorFamilyConfig


class Tiny(nn.Module):
    """``(B, C, h, w)`` to ``(B, C, h·scale, w·scale)``."""

    def __init__(
        self, in_bands: int, scale: int, out_bands: int | None = None, channels: int = 8
    ) -> None:
        super().__init__()
        out = out_bands or in_bands
        self.body = nn.Sequential(
            nn.Conv2d(in_bands, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, out * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class TinyConfig(GeneratorFamilyConfig):
    name: Literal["tiny"] = "tiny"
    channels: int = Field(8, ge=1)
'''

REGISTRY_IMPORT = "from srgan.models.tiny import Tiny, TinyConfig\n"
REGISTRY_LINE = '    "tiny": Family(Tiny, TinyConfig),\n'

SCRIPT = """
import json, sys, tempfile
import torch
from toy_data import TINY_RUN, PairDataModule, make_pairs
from srgan.config import ConfigError, load_config
from srgan.inference import load_inference_model
from srgan.train import fit

torch.set_num_threads(1)
config = load_config("cpu-tiny", {**TINY_RUN, "generator": {"name": "tiny", "channels": 4}})
try:
    load_config("cpu-tiny", {"generator": {"name": "tiny", "n_blocks": 2}})
    refused = ""
except ConfigError as err:
    refused = str(err)
lr, hr = make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)
datamodule = PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4)
with tempfile.TemporaryDirectory() as run_dir:
    result = fit(config, datamodule, run_dir)
    model = load_inference_model(result.last_checkpoint, device="cpu")
    sr = model.predict(torch.rand(1, 4, 8, 8))
print(json.dumps({
    "generator": type(model.generator.net).__name__,
    "iteration": result.iteration,
    "sr_shape": list(sr.shape),
    "refused": refused,
}))
"""


def _copy_with_tiny_family(dest: Path) -> None:
    for package in ("datasets", "srgan"):
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    models = dest / "srgan" / "models"
    (models / "tiny.py").write_text(TINY_FAMILY)
    registry = (models / "__init__.py").read_text()
    anchor_import = "from srgan.models.stochastic import"
    anchor_line = '    "stochastic": Family('
    assert anchor_import in registry and anchor_line in registry
    lines = registry.splitlines(keepends=True)
    at_import = next(i for i, line in enumerate(lines) if line.startswith(anchor_import))
    lines.insert(at_import + 1, REGISTRY_IMPORT)
    at_line = next(i for i, line in enumerate(lines) if line.startswith(anchor_line))
    lines.insert(at_line + 1, REGISTRY_LINE)
    (models / "__init__.py").write_text("".join(lines))


def test_a_new_generator_family_is_one_file_and_one_registry_entry(tmp_path: Path) -> None:
    _copy_with_tiny_family(tmp_path)
    changed = sorted(
        str(p.relative_to(tmp_path / "srgan"))
        for p in (tmp_path / "srgan").rglob("*.py")
        if not (ROOT / "srgan" / p.relative_to(tmp_path / "srgan")).exists()
        or p.read_text() != (ROOT / "srgan" / p.relative_to(tmp_path / "srgan")).read_text()
    )
    assert changed == ["models/__init__.py", "models/tiny.py"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "tests")])}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["generator"] == "Tiny"  # inside the bicubic residual wrapper
    assert out["iteration"] == 10
    assert out["sr_shape"] == [1, 4, 32, 32]
    assert (
        "unknown key 'generator.n_blocks'; valid keys here: name, bicubic_skip, channels"
        in (out["refused"])
    )
