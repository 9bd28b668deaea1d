"""QA overhead of super-resolve (issue #12): the consistency QA's share of the wall time.

The QA (degrading the output back, phase correlation, seams, synthesis, the sidecar) runs in
the same pass as the writing; ``super_resolve_scene`` times it apart (``seconds["qa"]``). This
bench super-resolves a 5490² scene mirror-tiled from the real sample scene (as
``bench/super_resolve.py`` does) on the CPU in a fresh process and reports ``qa / total``.

The generator is the smallest shipped preset's (``cpu-tiny``: 24 features, 4 residual blocks),
untrained (its speed, not its quality, matters); the QA's own time does not depend on it. The
machine is shared: other processes' CPU use during the run is recorded with the result.

Run::

    python -m bench.qa_overhead                 # 5490², tens of minutes on 2 busy cores
    python -m bench.qa_overhead --size 1024     # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.super_resolve import synthesize_scene
from bench.system import LoadProbe, machine

RESULTS = Path(__file__).resolve().parent / "results" / "qa_overhead.json"
#: Share of the wall time the QA may take (issue #12).
BUDGET = 0.10


def preset_checkpoint(path: Path) -> Path:
    """A weights-only checkpoint of an untrained ``cpu-tiny`` generator (×4, B02 B03 B04 B08)."""
    from srgan.config import load_config
    from srgan.module import SRGANModule

    module = SRGANModule(load_config("cpu-tiny"))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def child(scene: str, checkpoint: str, out: str, threads: int) -> int:
    """One measured run in this (fresh) process; prints its result as JSON."""
    from srgan.super_resolve_scene import super_resolve_scene

    torch.set_num_threads(threads)
    result = super_resolve_scene(scene, checkpoint, out, device="cpu")
    print(json.dumps(result.as_dict(), default=str))
    return 0


def measure(size: int, threads: int, work: Path) -> dict[str, Any]:
    """Super-resolve a ``size²`` scene in a child process; the QA's share of its time."""
    scene = synthesize_scene(size, work / f"scene_{size}.tif")
    checkpoint = preset_checkpoint(work / "cpu-tiny.ckpt")
    out = work / f"sr_{size}.tif"
    command = [sys.executable, "-m", "bench.qa_overhead", "--child", str(scene)]
    command += [str(checkpoint), str(out), "--threads", str(threads)]
    probe = LoadProbe.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    load = probe.stop()
    if done.returncode:
        raise RuntimeError(f"size {size} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    s = result["seconds"]
    return {
        "size": size,
        "seconds": s,
        "qa_share_of_total": round(s["qa"] / s["total"], 4),
        "qa_over_rest": round(s["qa"] / (s["total"] - s["qa"]), 4),
        "within_budget": s["qa"] / s["total"] <= BUDGET,
        "blocks": result["qa"]["blocks"],
        "verdict": result["qa"]["verdict"],
        "peak_rss_mb": result["peak_rss_mb"],
        "wall_s": round(wall, 1),
        "load": load,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the row, write ``bench/results/qa_overhead.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.qa_overhead", description=__doc__)
    parser.add_argument("--size", type=int, default=5490)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--child", nargs=3, metavar=("SCENE", "CKPT", "OUT"), default=None)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(*args.child, args.threads)
    work = Path(tempfile.mkdtemp(prefix="s2sr-qa-overhead-", dir=args.work_dir))
    try:
        row = measure(args.size, args.threads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(row, indent=1))
    if args.size == 5490:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": machine(), "row": row}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
