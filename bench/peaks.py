"""The machine's measured compute peak: dense matmul and a 3×3, 64-channel convolution.

Run in a fresh process (``python -m bench.peaks JOB.json RESULT.json``, the job holding
``{"threads": N}``) with the thread count of the training workloads, so the roofline compares
like with like. Each kernel is timed several times and the best repeat is kept: a peak is what
the machine *can* do, and on a shared machine the slower repeats measure the neighbours.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

MATMUL_SIZE = 2048
#: The conv of the generator trunk: batch 4, 64 -> 64 channels, 3×3, on 64×64 features.
CONV_SHAPE = (4, 64, 64, 64)


def _best_seconds(fn: Callable[[], object], repeats: int, inner: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def matmul_flops(dtype: torch.dtype, repeats: int = 5) -> float:
    """Best FLOP/s of an ``n × n`` by ``n × n`` matmul (``2 n³`` FLOPs)."""
    n = MATMUL_SIZE if dtype == torch.float32 else 512
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats, 3)


def conv_flops(dtype: torch.dtype, channels_last: bool, backward: bool, repeats: int = 5) -> float:
    """Best FLOP/s of the 3×3, 64-channel conv; forward only, or forward plus both gradients."""
    b, c, h, w = CONV_SHAPE
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(c, c, 3, padding=1).to(dtype)
    conv = conv.to(memory_format=fmt)  # type: ignore[call-overload]
    x = torch.rand(b, c, h, w, dtype=dtype).contiguous(memory_format=fmt)
    forward = 2 * b * c * c * 9 * h * w
    if not backward:
        with torch.no_grad():
            return forward / _best_seconds(lambda: conv(x), repeats, 5)
    x.requires_grad_(True)

    def step() -> None:
        conv(x).sum().backward()

    return 3 * forward / _best_seconds(step, repeats, 3)


def measure(threads: int) -> dict[str, float]:
    """All peaks in FLOP/s; ``conv_fp32`` and ``matmul_fp32`` are the roofline ceilings."""
    torch.set_num_threads(threads)
    out: dict[str, float] = {"threads": threads, "matmul_fp32": matmul_flops(torch.float32)}
    for layout in ("nchw", "nhwc"):
        cl = layout == "nhwc"
        out[f"conv_fp32_{layout}_fwd"] = conv_flops(torch.float32, cl, backward=False)
        out[f"conv_fp32_{layout}_fwd_bwd"] = conv_flops(torch.float32, cl, backward=True)
    out["conv_fp32"] = max(v for k, v in out.items() if k.startswith("conv_fp32_"))
    out["matmul_bf16"] = matmul_flops(torch.bfloat16, repeats=2)
    out["conv_bf16"] = max(
        conv_flops(torch.bfloat16, cl, backward=False, repeats=2) for cl in (False, True)
    )
    # the ceiling of bf16-mixed training, whose step runs NHWC
    out["conv_bf16_nhwc_fwd_bwd"] = conv_flops(torch.bfloat16, True, backward=True, repeats=2)
    return out


def main(argv: list[str]) -> int:
    """Entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    threads = int(json.loads(Path(job_path).read_text())["threads"])
    Path(result_path).write_text(json.dumps(measure(threads), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
