"""The QA gate: thresholds a super-resolved scene must meet, and the verdict against them.

:class:`QAGate` is the one parameter set of the gate (flow parameter, CLI options, library
argument); values out of range are refused when it is built. Its defaults come from measurements
on the real sample scenes (``bench/qa_thresholds.py``; numbers in ``docs/trust.md``): each lies
above what faithful outputs (a small SRGAN trained on the L1C sample, bicubic upsampling) score
on any block of the L1C scene and the six L2A patches, and below what a band displaced by a
quarter LR pixel, a 0.02 reflectance offset or tiles pasted without blending score.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from srgan.qa_defaults import DEFAULTS

#: Bits of the per-block ``flags`` band of the QA sidecar.
FLAG_REFLECTANCE = 1
FLAG_SPECTRAL = 2
FLAG_SHIFT = 4


class QAGate(BaseModel):
    """Thresholds of the consistency gate and what a broken gate does.

    Attributes:
        block_size: Edge of a QA block in output (HR) pixels; a multiple of the scale.
        max_reflectance_error: Largest mean ``|degrade(SR) − LR|`` of a block, per band,
            in reflectance (0.01 = 100 in reflectance ×10000).
        max_spectral_angle: Largest mean spectral angle between ``degrade(SR)`` and LR of a
            block, in degrees.
        max_shift: Largest displacement of ``degrade(SR)`` against LR in a block, per band, in
            LR pixels (phase correlation, precise to about 0.05 px).
        max_flagged_share: Share of judged blocks allowed to break a per-block threshold
            before the scene fails (clouds, surf and saturated pixels break some blocks of
            any good output).
        max_seam_ratio: Largest ratio of the reflectance error on tile borders of the
            inference tiling to that inside tiles, over the scene.
        min_valid_share: Blocks with a smaller share of valid input pixels are not judged.
        on_fail: ``"fail"``: the flow run ends Failed and the CLI exits with status 3 (the
            output, its QA sidecar and its STAC Item are kept, marked ``failed``);
            ``"warn"``: the run completes with a warning artifact and the CLI exits 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    block_size: int = Field(DEFAULTS.block_size, ge=64, le=8192)
    max_reflectance_error: float = Field(DEFAULTS.max_reflectance_error, gt=0.0, le=1.0)
    max_spectral_angle: float = Field(DEFAULTS.max_spectral_angle, gt=0.0, le=90.0)
    max_shift: float = Field(DEFAULTS.max_shift, gt=0.0, le=10.0)
    max_flagged_share: float = Field(DEFAULTS.max_flagged_share, ge=0.0, le=1.0)
    max_seam_ratio: float = Field(DEFAULTS.max_seam_ratio, ge=1.0, le=10.0)
    min_valid_share: float = Field(DEFAULTS.min_valid_share, gt=0.0, le=1.0)
    on_fail: Literal["fail", "warn"] = DEFAULTS.on_fail


Verdict = Literal["passed", "failed"]
