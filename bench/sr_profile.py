"""Where a generator's forward pass spends its time in scene inference, op by op.

The generator (``--generator``, as in :mod:`bench.super_resolve`; untrained weights) is loaded
the way ``s2-srgan super-resolve`` loads it (:func:`srgan.inference.load_inference_model`:
inference graph, NHWC, the precision asked for) and runs batches of tiles of the size the
scene pass uses (tile + 2 × overlap) under :mod:`torch.profiler`. The table lists the ops by
self CPU time, with the convolutions' FLOPs and GFLOP/s beside the machine's conv forward peak
(:mod:`bench.peaks`) measured in the same run: it says how much of the gap to the peak is in
the convolutions themselves and how much in the ops around them.

Run::

    python -m bench.sr_profile --generator 10m --tile-size 96 --precision bfloat16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, register_flop_formula

from bench import peaks
from bench.report import update_results_md
from bench.super_resolve import GENERATORS, SECTION, untrained_checkpoint
from bench.system import isa_label, machine

#: ops that are convolutions (their FLOPs are what the conv peak measures); the last is
#: oneDNN's convolution with a fused activation (:class:`srgan.inference_graph.ConvActivation`)
CONV_OPS = (
    "aten::mkldnn_convolution",
    "aten::convolution",
    "aten::_convolution",
    "mkldnn::_convolution_pointwise",
)


@register_flop_formula(torch.ops.mkldnn._convolution_pointwise)
def _fused_conv_flop(
    x_shape: Any,
    w_shape: Any,
    bias: Any,
    padding: Any,
    stride: Any,
    dilation: Any,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """The fused convolution's FLOPs are its convolution's (the activation adds none)."""
    return int(conv_flop_count(x_shape, w_shape, out_shape, transposed=False))


def op_times(model: Any, batch: torch.Tensor, runs: int) -> tuple[dict[str, float], float]:
    """Self CPU seconds per op name over ``runs`` forward passes, and the wall seconds."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for _ in range(runs):
            model.predict(batch)
        wall = time.perf_counter() - started
    seconds: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        seconds[event.key] += event.self_cpu_time_total / 1e6
    return dict(seconds), wall


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Profile the generator; the rows, the conv FLOPs and the peaks."""
    from srgan.inference import load_inference_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="s2sr-sr-profile-") as tmp:
        checkpoint = untrained_checkpoint(args.generator, Path(tmp) / "generator.ckpt")
        model = load_inference_model(str(checkpoint), device="cpu", precision=args.precision)
    edge = args.tile_size + 2 * args.overlap
    batch = torch.rand(args.batch_size, len(model.bands), edge, edge)
    for _ in range(2):  # warm-up: oneDNN primitives are created on the first calls
        model.predict(batch)
    counter = FlopCounterMode(display=False)
    with counter:
        model.predict(batch)
    flops = counter.get_flop_counts()
    conv_flops = sum(
        count for op, count in flops.get("Global", {}).items() if "convolution" in str(op)
    )
    total_flops = counter.get_total_flops()
    seconds, wall = op_times(model, batch, args.runs)
    busy = sum(seconds.values())
    conv_seconds = sum(seconds.get(op, 0.0) for op in CONV_OPS)
    rows = sorted(seconds.items(), key=lambda kv: -kv[1])[: args.top]
    peak = peaks.measure(args.threads)
    return {
        "generator": args.generator,
        "precision": model.precision,
        "tile": args.tile_size,
        "overlap": args.overlap,
        "batch": args.batch_size,
        "runs": args.runs,
        "wall_s": wall,
        "profiled_s": busy,
        "conv_s": conv_seconds,
        "conv_gflop": conv_flops * args.runs / 1e9,
        "total_gflop": total_flops * args.runs / 1e9,
        "rows": [{"op": op, "seconds": s, "share": s / busy} for op, s in rows],
        "peaks": peak,
    }


def markdown(result: dict[str, Any], system: dict[str, Any]) -> str:
    """The profile as a markdown block."""
    peak_key = "conv_bf16" if result["precision"] == "bfloat16" else "conv_fp32_nhwc_fwd"
    peak = result["peaks"][peak_key]
    conv_rate = result["conv_gflop"] / result["conv_s"] if result["conv_s"] else float("nan")
    overall = result["total_gflop"] / result["wall_s"]
    lines = [
        f"Command: `python -m bench.sr_profile --generator {result['generator']} --tile-size "
        f"{result['tile']} --batch-size {result['batch']} --precision {result['precision']}` "
        f"({result['runs']} forward passes of {result['batch']} tile(s) of "
        f"{result['tile'] + 2 * result['overlap']}²); {system['cpu']} ({isa_label(system)}), "
        f"{os.environ.get('OMP_NUM_THREADS') or torch.get_num_threads()} threads.",
        "",
        f"- whole forward: {overall:.0f} GFLOP/s = {overall / (peak / 1e9):.0%} of the conv "
        f"forward peak ({peak / 1e9:.0f} GFLOP/s, {peak_key});",
        f"- convolutions: {result['conv_s'] / result['profiled_s']:.0%} of the profiled op "
        f"time, at {conv_rate:.0f} GFLOP/s = {conv_rate / (peak / 1e9):.0%} of that peak;",
        f"- everything else: {1 - result['conv_s'] / result['profiled_s']:.0%} of the op time "
        "for no convolution FLOPs.",
        "",
        "| op | self CPU s | share |",
        "|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| `{row['op']}` | {row['seconds']:.3f} | {row['share']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile, print and record."""
    parser = argparse.ArgumentParser(prog="python -m bench.sr_profile", description=__doc__)
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="10m")
    parser.add_argument("--tile-size", type=int, default=96)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    result = measure(args)
    text = markdown(result, machine())
    print(text)
    if not args.no_write:
        block = f"sr-profile-{args.generator}-{result['precision']}"
        update_results_md(block, text, section=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
