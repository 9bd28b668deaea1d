"""The QA record of one super-resolved scene: typed, JSON-able, the same in the CLI's JSON, the
Prefect table artifact and the STAC Item (``s2sr:qa``).

All reflectance figures are in reflectance (not ×10000); angles in degrees; shifts in LR
pixels. Scene figures are pixel-weighted over the judged valid pixels; ``p95``/``max`` are taken
over blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from srgan.qa_gate import Verdict


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class BandQA:
    """Consistency of one band with its input.

    Attributes:
        band: Band name.
        reflectance_error: Mean ``|degrade(SR) − LR|``; ``reflectance_error_p95``/``_max``
            over blocks.
        reflectance_bias: Mean ``degrade(SR) − LR`` (a brightness offset shows here).
        shift_median: Median over blocks of the displacement ``|(dy, dx)|`` (LR px);
            ``shift_max`` the largest block's (``None`` where no block could be judged).
        synthesis: Mean ``|SR − bicubic(LR)|`` at the output grid (on one output row per
            input row, phases cycling): the high-frequency detail the model added over bicubic
            upsampling.
    """

    band: str
    reflectance_error: float
    reflectance_error_p95: float | None
    reflectance_error_max: float | None
    reflectance_bias: float
    shift_median: float | None
    shift_max: float | None
    synthesis: float


@dataclass(frozen=True)
class SeamQA:
    """Consistency on the tile borders of the inference tiling against tile interiors.

    Attributes:
        border_error: Mean ``|degrade(SR) − LR|`` (all bands) of LR pixels within
            :data:`srgan.qa_scene.SEAM_WIDTH` px of an inner tile edge.
        interior_error: The same over the other pixels.
        ratio: ``border_error / interior_error`` (1: no seam).
        ratio_noise: Standard error of the ratio, from its spread over blocks (``None``
            with fewer than two blocks; ``ratio`` is ``None`` without tile borders).
        step_ratio: Mean ``|Δ|`` of the output across inner tile edges over that across the
            other LR pixel boundaries away from tile borders (1: no visible seam; a tile pasted
            without blending shows as a step); ``step_ratio_noise`` its standard error.
    """

    border_error: float
    interior_error: float
    ratio: float | None
    ratio_noise: float | None
    step_ratio: float | None = None
    step_ratio_noise: float | None = None


@dataclass(frozen=True)
class QASummary:
    """What the QA found for one scene, and the gate's verdict.

    Attributes:
        verdict: ``"passed"`` or ``"failed"``; ``reasons`` says which thresholds broke.
        blocks: Number of QA blocks; ``judged_blocks`` those with enough valid pixels;
            ``flagged_blocks`` the judged ones breaking a per-block threshold.
        flagged_share: ``flagged_blocks / judged_blocks``.
        spectral_angle: Mean spectral angle; ``spectral_angle_max`` the largest block's.
        bands: One :class:`BandQA` per band, in output band order.
        seams: :class:`SeamQA`.
        degradation: The degradation used to go back to the input grid
            (``Degradation.to_attrs()``); ``degradation_source`` where it came from
            (``"checkpoint"`` or a sentence saying why the default was used).
        gate: The thresholds applied (:class:`~srgan.qa_gate.QAGate` as a dict).
        sidecar: Path or URI of the per-block QA COG.
    """

    verdict: Verdict
    reasons: list[str]
    blocks: int
    judged_blocks: int
    flagged_blocks: int
    flagged_share: float
    spectral_angle: float
    spectral_angle_max: float | None
    bands: list[BandQA]
    seams: SeamQA
    degradation: dict[str, Any]
    degradation_source: str
    gate: dict[str, Any]
    sidecar: str | None = None
    seconds: float = field(default=0.0, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-able data."""
        return asdict(self)

    def table(self) -> list[dict[str, Any]]:
        """One row per band (and a scene row) for a Prefect table artifact."""
        rows: list[dict[str, Any]] = [
            {
                "band": b.band,
                "reflectance error": round(b.reflectance_error, 5),
                "reflectance error p95 (blocks)": _round(b.reflectance_error_p95, 5),
                "reflectance bias": round(b.reflectance_bias, 5),
                "shift median (LR px)": _round(b.shift_median, 3),
                "shift max (LR px)": _round(b.shift_max, 3),
                "synthesis (added detail)": round(b.synthesis, 5),
            }
            for b in self.bands
        ]
        rows.append(
            {
                "band": "scene",
                "spectral angle (deg)": round(self.spectral_angle, 3),
                "spectral angle max (deg)": _round(self.spectral_angle_max, 3),
                "seam ratio": _round(self.seams.ratio, 3),
                "seam ratio noise": _round(self.seams.ratio_noise, 3),
                "seam step ratio": _round(self.seams.step_ratio, 3),
                "seam step ratio noise": _round(self.seams.step_ratio_noise, 3),
                "flagged blocks": f"{self.flagged_blocks}/{self.judged_blocks}",
                "verdict": self.verdict,
            }
        )
        return rows
