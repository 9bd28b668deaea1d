"""``make bench-gpu`` is safe on a machine without a CUDA device: it says so and writes nothing.

Broken by hand: removing the ``torch.cuda.is_available()`` guard in ``bench.gpu.main`` makes
the command fail on the first CUDA call, and this test with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_cuda_nothing_is_measured_or_written(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU this machine may have
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--output", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_make_target_runs_the_gpu_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nbench-gpu:") + 1 :].splitlines()
    assert target[1].strip() == "$(BIN)/python -m bench.gpu"
