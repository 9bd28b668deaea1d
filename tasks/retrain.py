"""The champion/challenger decision of ``retrain-srgan`` and its artifacts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from srgan.config import METRIC_HIGHER_IS_BETTER

#: Validation metrics (``val_metrics/*``) of each evaluated model, by model name.
Scores = dict[str, dict[str, float]]


@dataclass(frozen=True)
class RetrainDecision:
    """Whether the challenger replaces the champion, and why.

    Attributes:
        outcome: ``"promoted"`` or ``"kept champion"``.
        reason: One line: the two scores compared, or that there was no champion yet.
        challenger_score: The challenger's value of the deciding metric.
        champion_score: The champion's, or ``None`` without a champion.
    """

    outcome: Literal["promoted", "kept champion"]
    reason: str
    challenger_score: float
    champion_score: float | None

    @property
    def promote(self) -> bool:
        """True when the challenger becomes the champion."""
        return self.outcome == "promoted"


def is_better(challenger: float, champion: float, metric: str, min_gain: float) -> bool:
    """Whether the challenger beats the champion by more than ``min_gain`` on ``metric``."""
    gain = challenger - champion if METRIC_HIGHER_IS_BETTER[metric] else champion - challenger
    return gain > min_gain


def decide(scores: Scores, metric: str, min_gain: float) -> RetrainDecision:
    """Promote the challenger when there is no champion or it is better by more than
    ``min_gain`` on ``metric``; ``scores`` holds ``"challenger"`` and, if any, ``"champion"``."""
    key = f"val_metrics/{metric}"
    challenger = scores["challenger"][key]
    champion = scores["champion"][key] if "champion" in scores else None
    if champion is None:
        return RetrainDecision("promoted", "no champion yet", challenger, None)
    reason = f"challenger {metric} {challenger:.5f} vs champion {champion:.5f}"
    better = is_better(challenger, champion, metric, min_gain)
    return RetrainDecision("promoted" if better else "kept champion", reason, challenger, champion)


def evaluation_rows(scores: Scores) -> list[dict[str, Any]]:
    """One row per model and one for bicubic upsampling (from the same validation patches), one
    column per metric: PSNR/SSIM/SAM/ERGAS/L1 and the improvement / omission / hallucination
    shares (missing values, e.g. from models evaluated before the shares existed: ``None``)."""
    rows: list[dict[str, Any]] = []
    for model, metrics in [*scores.items(), ("bicubic", _bicubic(scores))]:
        values = {name: metrics.get(f"val_metrics/{name}") for name in METRIC_HIGHER_IS_BETTER}
        rows.append({"model": model, **{k: _rounded(v) for k, v in values.items()}})
    return rows


def _bicubic(scores: Scores) -> dict[str, float]:
    """The bicubic baseline's values, as the challenger's evaluation measured them."""
    prefix = "val_metrics/bicubic_"
    measured = scores["challenger"]
    return {
        f"val_metrics/{k.removeprefix(prefix)}": v
        for k, v in measured.items()
        if k.startswith(prefix)
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 5)


@task(name="register-retrain-decision")
def register_retrain_decision(
    decision: RetrainDecision,
    scores: Scores,
    checkpoints: dict[str, str],
    metric: str,
    min_gain: float,
    store_version: str | None,
) -> None:
    """The ``retrain-evaluation`` table (every metric of each model) and the ``retrain-decision``
    note."""
    create_table_artifact(
        key="retrain-evaluation",
        table=evaluation_rows(scores),
        description="same validation patches: each model and bicubic upsampling",
    )
    create_markdown_artifact(
        key="retrain-decision",
        markdown=(
            f"# Retrain decision: {decision.outcome}\n\n- metric: `{metric}` (min gain "
            f"{min_gain})\n- {decision.reason}\n- challenger: `{checkpoints['challenger']}`\n"
            f"- champion: `{checkpoints.get('champion')}`\n- store version: `{store_version}`\n"
        ),
        description="champion/challenger decision",
    )
