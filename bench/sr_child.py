"""One measured scene super-resolution in a fresh process (run by :mod:`bench.super_resolve`).

``python -m bench.sr_child JOB.json RESULT.json``. Imports only what ``s2-srgan super-resolve``
imports, so the time from the process's start to the first tile entering the generator is the
command's start-up. The job names the scene, checkpoint, output, threads, the process's start
(``t0``, wall clock) and optional tile size, batch size, precision and compression;
``two_pass`` writes the COG the way it was written before the one-pass writer (strips into a
temporary GeoTIFF, then GDAL's COG driver), for a before/after in one invocation.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Super-resolve the job's scene; returns the result, its settings and the start-up."""
    import torch

    from srgan.inference import load_inference_model
    from srgan.inference_tuning import tiling_for
    from srgan.super_resolve_scene import super_resolve_scene
    from srgan.tiled import TiledSuperResolver

    torch.set_num_threads(int(job["threads"]))
    if job.get("two_pass"):  # the COG through GDAL's driver, as before the one-pass writer
        from datasets import cog_writer

        cog_writer.ONE_PASS = ()
    first: list[float] = []
    original = TiledSuperResolver._predict

    def timed(self: TiledSuperResolver, tiles: Any, weights: Any) -> Any:
        if not first:
            first.append(time.time() - float(job["t0"]))
        return original(self, tiles, weights)

    TiledSuperResolver._predict = timed  # type: ignore[method-assign]
    model = load_inference_model(
        job["checkpoint"], device=job.get("device", "cpu"), precision=job.get("precision", "auto")
    )
    tile, batch = tiling_for(model, job.get("tile_size"), job.get("batch_size"), job["overlap"])
    options = {} if job.get("level") is None else {"compress_level": job["level"]}
    result = super_resolve_scene(
        job["scene"],
        model,
        job["out"],
        tile_size=tile,
        overlap=job["overlap"],
        batch_size=batch,
        compress=job["compress"],
        **options,
    ).as_dict()
    result.update(
        {
            "tile_size": tile,
            "batch_size": batch,
            "precision": model.precision,
            "first_tile_s": first[0] if first else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "output_mb": os.path.getsize(job["out"]) / 2**20,
        }
    )
    return result


def main(argv: list[str]) -> int:
    """Entry point: ``JOB.json RESULT.json``."""
    job_path, result_path = argv
    result = run(json.loads(Path(job_path).read_text()))
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
