"""``make bench-gpu``: everything worth timing on a CUDA machine, in one go.

On a machine with a CUDA device this measures, and writes into ``bench/RESULTS.md`` (section
"GPU (issue #15)") and ``bench/results/gpu.json``:

- the GPU's convolution peaks (the 3×3, 64-channel conv of the generator trunk; float32 and
  bfloat16, forward and forward+backward, NHWC);
- the training step of the reference workloads at batch 16 (the 10 m preset's batch) in
  float32 and bf16-mixed, NCHW against NHWC, and with ``torch.compile`` — through the same
  fresh-process worker as the CPU benchmark (:mod:`bench.worker`);
- scene super-resolution with the 10 m preset's generator: model-only throughput for each
  precision, tile and batch size tried (:func:`srgan.inference_tuning.tune_inference`), and one
  whole-pipeline run on a 2048² scene with the best of them.

Without a CUDA device it measures nothing, says so and exits 0, so ``make bench-gpu`` is safe
anywhere (``tests/bench/test_gpu_bench.py``).

Run::

    make bench-gpu                      # or: python -m bench.gpu [--quick] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import report

SECTION = "## GPU (issue #15)"
#: ``BASE[+MOD...]`` suffix putting a workload on the GPU at the 10 m preset's batch size.
ON_GPU = "+trainer.accelerator=gpu+trainer.devices=1+data.batch_size=16+trainer.precision=32-true"
TRAINING_SPECS = (
    f"pretrain{ON_GPU}",
    f"pretrain{ON_GPU}+bf16",
    f"pretrain{ON_GPU}+nchw",
    f"pretrain{ON_GPU}+bf16+compile",
    f"adversarial{ON_GPU}",
    f"adversarial{ON_GPU}+bf16",
    f"adversarial{ON_GPU}+bf16+compile",
)


def _best_seconds(fn: Callable[[], object], repeats: int = 5, inner: int = 10) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - started) / inner)
    return best


def gpu_peaks(batch: int = 16, size: int = 64, channels: int = 64) -> dict[str, float]:
    """Best FLOP/s of the trunk conv on the GPU: float32/bfloat16, forward/forward+backward."""
    out: dict[str, float] = {}
    forward = 2 * batch * channels * channels * 9 * size * size
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).cuda().to(dtype)
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = torch.rand(batch, channels, size, size, device="cuda", dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out[f"conv_{name}_fwd"] = forward / _best_seconds(lambda c=conv, x=x: c(x))
        x.requires_grad_(True)
        out[f"conv_{name}_fwd_bwd"] = (
            3 * forward / _best_seconds(lambda c=conv, x=x: c(x).sum().backward())
        )
    return out


def training(quick: bool, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The training workloads on the GPU (fresh process per run, interleaved)."""
    from bench.training import Settings, run_training
    from bench.workloads import parse_spec

    specs = [parse_spec(s) for s in (TRAINING_SPECS[:2] if quick else TRAINING_SPECS)]
    # every row sets what it measures; the rest stays built-in (no tuning trial first)
    settings = Settings(
        runs=1 if quick else 2, warmup=5, iterations=10 if quick else 30, max_runs=1, tune=False
    )
    return run_training(specs, settings, log=log)


def super_resolution(quick: bool, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The 10 m preset's generator: model-only candidates, then one whole-scene run."""
    from bench.super_resolve import flops_per_lr_pixel, synthesize_scene, untrained_checkpoint
    from srgan.inference import load_inference_model
    from srgan.inference_tuning import tune_inference
    from srgan.super_resolve_scene import super_resolve_scene

    checkpoint = untrained_checkpoint("10m", work / "10m.ckpt")
    model = load_inference_model(checkpoint, device="cuda", precision="float32")
    tiles = (128, 256) if quick else (128, 192, 256, 384, 512)
    batches = (1, 4) if quick else (1, 2, 4, 8, 16)
    trial = tune_inference(model, tiles=tiles, batches=batches, store=False, log=log)
    flops = flops_per_lr_pixel("10m")
    best = trial.best
    scene = synthesize_scene(1024 if quick else 2048, work / "scene.tif")
    tuned = load_inference_model(checkpoint, device="cuda", precision=best.precision)  # type: ignore[arg-type]
    result = super_resolve_scene(
        str(scene),
        tuned,
        str(work / "sr.tif"),
        tile_size=best.tile_size,
        batch_size=best.batch_size,
    )
    return {"trial": trial.as_dict(), "flops_per_lr_pixel": flops, "pipeline": result.as_dict()}


def markdown(record: dict[str, Any]) -> str:
    """The generated block: header, peaks, training table, super-resolution tables."""
    peaks, sr = record["peaks"], record["super_resolution"]
    lines = [
        f"Command: `{record['command']}` ({record['created']}); {record['gpu']}, "
        f"torch {record['machine']['torch']}.",
        "",
        "| conv 3×3, 64 ch, NHWC | GFLOP/s |",
        "|---|---|",
        *(f"| `{k}` | {v / 1e9:.0f} |" for k, v in peaks.items()),
        "",
        report.training_table(
            {"workloads": record["training"], "peaks": {}, "machine": record["machine"]}
        ),
        "",
        "| precision | tile | batch | s/call | output MP/s | GFLOP/s | of conv fwd peak |",
        "|---|---|---|---|---|---|---|",
    ]
    flops = sr["flops_per_lr_pixel"]
    for c in sr["trial"]["candidates"]:
        gflops = flops * c["batch_size"] * c["tile_size"] ** 2 / c["seconds"] / 1e9
        peak = peaks["conv_bf16_fwd" if c["precision"] == "bfloat16" else "conv_fp32_fwd"]
        lines.append(
            f"| {c['precision']} | {c['tile_size']} | {c['batch_size']} | {c['seconds']:.4f} "
            f"| {c['output_mp_per_s']:.1f} | {gflops:.0f} | {100 * gflops * 1e9 / peak:.0f} % |"
        )
    p = sr["pipeline"]
    s = p["seconds"]
    lines += [
        "",
        f"Whole pipeline, {p['lr_size'][0]}² scene, {sr['trial']['best']}: {s['total']:.1f} s "
        f"(model {s['model']:.1f}, read {s['read']:.1f}, blend {s['blend']:.1f}, write strips "
        f"{s['write']:.1f}, COG publish {s['cog']:.1f}), {p['megapixels_per_second']} MP/s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run everything on the GPU, or say there is none and exit 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and iterations")
    parser.add_argument("--output", help="write DIR/results/gpu.json and DIR/RESULTS.md instead")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench-gpu: no CUDA device on this machine; nothing measured, nothing written")
        return 0
    from bench.system import machine

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    record: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench.gpu", *(argv or sys.argv[1:])]),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "gpu": torch.cuda.get_device_name(0),
        "peaks": gpu_peaks(),
    }
    log(f"peaks: { {k: round(v / 1e9) for k, v in record['peaks'].items()} } GFLOP/s")
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-gpu-") as tmp:
        record["super_resolution"] = super_resolution(args.quick, Path(tmp), log)
    record["training"] = training(args.quick, log)
    out = Path(args.output) if args.output else None
    path = report.write_json("gpu", record, out / "results" if out else report.RESULTS_DIR)
    block = markdown(record)
    md = out / "RESULTS.md" if out else report.RESULTS_MD
    report.update_results_md("gpu", block, md, section=SECTION)
    log(f"wrote {path} and {md}")
    print(block)
    print(json.dumps({"gpu": record["gpu"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
