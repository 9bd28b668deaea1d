"""The scene QA of in-memory arrays: an input and an output already in hand.

For recomputing the QA of a written COG (reading it back), for measuring what corrupted
outputs score, and for choosing the gate's defaults (``bench/qa_thresholds.py``). The scores are
those :class:`~srgan.qa_scene.SceneQA` gives while a scene is written, whatever the strip height.
"""

from __future__ import annotations

import numpy as np

from datasets.degradation import Degradation
from srgan.qa_gate import QAGate
from srgan.qa_scene import QAGeometry, SceneQA, SceneQAResult


def qa_of_arrays(
    lr: np.ndarray,
    written: np.ndarray,
    geometry: QAGeometry,
    gate: QAGate | None = None,
    degradation: Degradation | None = None,
    degradation_source: str = "checkpoint",
    strip_rows: int = 112,
) -> SceneQAResult:
    """Score ``written`` against its input ``lr``, fed as strips of ``strip_rows`` LR rows.

    Args:
        lr: ``(C, h, w)`` input, reflectance ×10000.
        written: ``(C, h·scale, w·scale)`` output: uint16 reflectance ×10000 or float32
            reflectance (nan as nodata).
        geometry: Scene and tiling (its ``height``/``width`` those of ``lr``).
        gate: Thresholds (default :class:`QAGate`).
        degradation: The training degradation (default :class:`Degradation`).
        degradation_source: Recorded in the summary.
        strip_rows: LR rows per strip.

    Returns:
        The scene's summary and per-block grids.
    """
    qa = SceneQA(geometry, gate or QAGate(), degradation or Degradation(), degradation_source)
    s = geometry.scale
    for row in range(0, geometry.height, strip_rows):
        n = min(strip_rows, geometry.height - row)
        qa.add(row, lr[:, row : row + n], written[:, row * s : (row + n) * s])
    return qa.finish()
