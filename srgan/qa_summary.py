"""Per-block QA sums, and their reduction to the scene summary, the gate's verdict and the
per-block grids of the QA sidecar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from srgan.qa_gate import FLAG_REFLECTANCE, FLAG_SHIFT, FLAG_SPECTRAL, QAGate
from srgan.qa_record import BandQA, QASummary, SeamQA


@dataclass
class BlockScores:
    """Sums over the LR pixels of each block (``(rows, cols)`` grids, ``(C, rows, cols)`` per
    band); reflectance figures in reflectance, angles in degrees, shifts in LR px."""

    pixels: np.ndarray
    valid: np.ndarray
    error: np.ndarray
    bias: np.ndarray
    angle: np.ndarray
    synthesis: np.ndarray
    border_error: np.ndarray
    border_count: np.ndarray
    interior_error: np.ndarray
    interior_count: np.ndarray
    step_edge: np.ndarray
    step_edge_count: np.ndarray
    step_interior: np.ndarray
    step_interior_count: np.ndarray
    shift: np.ndarray

    @classmethod
    def empty(cls, bands: int, rows: int, cols: int) -> BlockScores:
        """Zero sums (nan shifts) for a ``rows × cols`` grid of blocks."""
        grid, per_band = np.zeros((rows, cols)), np.zeros((bands, rows, cols))
        return cls(
            pixels=grid.copy(),
            valid=grid.copy(),
            error=per_band.copy(),
            bias=per_band.copy(),
            angle=grid.copy(),
            synthesis=per_band.copy(),
            border_error=grid.copy(),
            border_count=grid.copy(),
            interior_error=grid.copy(),
            interior_count=grid.copy(),
            step_edge=grid.copy(),
            step_edge_count=grid.copy(),
            step_interior=grid.copy(),
            step_interior_count=grid.copy(),
            shift=np.full((bands, rows, cols), np.nan),
        )

    def add(self, row: int, **sums: np.ndarray) -> None:
        """Add column sums (``(cols,)`` or ``(C, cols)``) to block row ``row``."""
        for name, value in sums.items():
            getattr(self, name)[..., row, :] += value


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _stat(values: np.ndarray, fn: Any) -> float | None:
    """``fn`` of the finite values, ``None`` when there are none (JSON has no nan)."""
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else None


def _mean(total: np.ndarray, count: np.ndarray) -> float | None:
    n = float(count.sum())
    return float(total.sum()) / n if n > 0 else None


def _noise(ratios: np.ndarray) -> float | None:
    """Standard error of a scene ratio from the spread of its per-block values."""
    finite = ratios[np.isfinite(ratios)]
    return float(finite.std() / np.sqrt(finite.size)) if finite.size > 1 else None


def summarise(
    scores: BlockScores,
    bands: Sequence[str],
    gate: QAGate,
    degradation: dict[str, Any],
    degradation_source: str,
) -> tuple[QASummary, dict[str, np.ndarray]]:
    """Scene figures, the gate's verdict and the sidecar grids from the block sums.

    Returns:
        The summary (``sidecar`` unset) and band name → ``(rows, cols)`` float32 grid.
    """
    valid_share = _ratio(scores.valid, scores.pixels)
    judged = valid_share >= gate.min_valid_share
    error = _ratio(scores.error, scores.valid[None])
    angle = _ratio(scores.angle, scores.valid)
    synthesis = _ratio(scores.synthesis, scores.valid[None])
    seam = _ratio(
        _ratio(scores.border_error, scores.border_count),
        _ratio(scores.interior_error, scores.interior_count),
    )
    step = _ratio(
        _ratio(scores.step_edge, scores.step_edge_count),
        _ratio(scores.step_interior, scores.step_interior_count),
    )
    flags = np.zeros(judged.shape, np.int32)
    with np.errstate(invalid="ignore"):
        flags |= np.where((error > gate.max_reflectance_error).any(0), FLAG_REFLECTANCE, 0)
        flags |= np.where(angle > gate.max_spectral_angle, FLAG_SPECTRAL, 0)
        flags |= np.where((scores.shift > gate.max_shift).any(0), FLAG_SHIFT, 0)
    flags[~judged] = 0
    n_judged, n_flagged = int(judged.sum()), int((flags > 0).sum())
    share = n_flagged / n_judged if n_judged else 0.0
    total = max(float(scores.valid.sum()), 1.0)
    band_rows = []
    for b, name in enumerate(bands):
        band_rows.append(
            BandQA(
                band=name,
                reflectance_error=float(scores.error[b].sum() / total),
                reflectance_error_p95=_stat(error[b][judged], lambda v: np.percentile(v, 95)),
                reflectance_error_max=_stat(error[b][judged], np.max),
                reflectance_bias=float(scores.bias[b].sum() / total),
                shift_median=_stat(scores.shift[b][judged], np.median),
                shift_max=_stat(scores.shift[b][judged], np.max),
                synthesis=float(scores.synthesis[b].sum() / total),
            )
        )
    border = float(scores.border_error.sum() / max(scores.border_count.sum(), 1.0))
    interior = float(scores.interior_error.sum() / max(scores.interior_count.sum(), 1.0))
    edge_step = _mean(scores.step_edge, scores.step_edge_count)
    interior_step = _mean(scores.step_interior, scores.step_interior_count)
    seams = SeamQA(
        border_error=border,
        interior_error=interior,
        ratio=border / interior if interior > 0 and border > 0 else None,
        ratio_noise=_noise(seam[judged]),
        step_ratio=edge_step / interior_step if edge_step and interior_step else None,
        step_ratio_noise=_noise(step[judged]),
    )
    reasons = []
    if share > gate.max_flagged_share:
        reasons.append(
            f"{n_flagged} of {n_judged} blocks ({share:.1%}) break a per-block threshold "
            f"(reflectance error {gate.max_reflectance_error}, spectral angle "
            f"{gate.max_spectral_angle}°, shift {gate.max_shift} LR px); at most "
            f"{gate.max_flagged_share:.1%} allowed. The QA sidecar's 'flags' band shows where."
        )
    if seams.ratio is not None and seams.ratio > gate.max_seam_ratio:
        reasons.append(
            f"tile borders are {seams.ratio:.2f}× less consistent than tile interiors "
            f"(at most {gate.max_seam_ratio} allowed): a blending defect; the sidecar's "
            "'seam_ratio' band shows where"
        )
    if seams.step_ratio is not None and seams.step_ratio > gate.max_seam_ratio:
        reasons.append(
            f"the output steps {seams.step_ratio:.2f}× more across tile edges than across "
            f"other lines (at most {gate.max_seam_ratio} allowed): visible seams; the "
            "sidecar's 'seam_step_ratio' band shows where"
        )
    summary = QASummary(
        verdict="failed" if reasons else "passed",
        reasons=reasons,
        blocks=int(judged.size),
        judged_blocks=n_judged,
        flagged_blocks=n_flagged,
        flagged_share=share,
        spectral_angle=float(scores.angle.sum() / total),
        spectral_angle_max=_stat(angle[judged], np.max),
        bands=band_rows,
        seams=seams,
        degradation=degradation,
        degradation_source=degradation_source,
        gate=gate.model_dump(mode="json"),
    )
    grids: dict[str, np.ndarray] = {}
    for b, name in enumerate(bands):
        grids[f"reflectance_error_{name}"] = error[b]
    grids["spectral_angle"] = angle
    for b, name in enumerate(bands):
        grids[f"shift_{name}"] = scores.shift[b]
    for b, name in enumerate(bands):
        grids[f"synthesis_{name}"] = synthesis[b]
    grids["seam_ratio"] = seam
    grids["seam_step_ratio"] = step
    grids["valid_share"] = valid_share
    grids["flags"] = np.where(judged, flags, np.nan)
    return summary, {k: v.astype(np.float32) for k, v in grids.items()}
