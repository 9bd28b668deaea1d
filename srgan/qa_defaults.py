"""Default values of the QA gate (:class:`~srgan.qa_gate.QAGate` takes its defaults from here).

Kept free of heavy imports: ``s2-srgan --help`` lists the ``--qa-*`` options with these
defaults without loading pydantic; their ranges are checked by ``QAGate`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GateDefaults:
    """One field per :class:`~srgan.qa_gate.QAGate` field, same name, its default value."""

    block_size: int = 512
    max_reflectance_error: float = 0.015
    max_spectral_angle: float = 2.5
    max_shift: float = 0.15
    max_flagged_share: float = 0.05
    max_seam_ratio: float = 1.25
    min_valid_share: float = 0.5
    on_fail: Literal["fail", "warn"] = "fail"


DEFAULTS = GateDefaults()
