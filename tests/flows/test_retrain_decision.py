"""The retrain decision: promote only a challenger better than the champion by more than
``min_gain``, in the metric's own direction.

Scores are binary fractions (exact in floating point), so a gain equal to ``min_gain`` is exactly
equal and the boundary itself is tested. The direction of each metric is written out here, not
read from the code under test.

Shown failing: with ``gain >= min_gain`` in ``tasks.retrain.is_better`` the boundary tests fail;
with the direction ignored (``gain = challenger - champion``) the lower-is-better tests fail; with
``min_gain`` ignored (``gain > 0``) the margin tests fail.
"""

from __future__ import annotations

import pytest

from tasks.retrain import decide, evaluation_rows, is_better

HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "l1": False,
    "sam": False,
    "ergas": False,
    "improvement": True,
    "omission": False,
    "hallucination": False,
}


def _scores(metric: str, gain: float, champion: float = 0.5) -> tuple[float, float]:
    """``(challenger, champion)`` where the challenger is ``gain`` better on ``metric``."""
    return (champion + gain if HIGHER_IS_BETTER[metric] else champion - gain), champion


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_better_challenger_is_promoted(metric: str) -> None:
    assert is_better(*_scores(metric, 0.125), metric, min_gain=0.0)


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_worse_challenger_is_not_promoted(metric: str) -> None:
    assert not is_better(*_scores(metric, -0.125), metric, min_gain=0.0)


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_tie_keeps_the_champion(metric: str) -> None:
    assert not is_better(0.5, 0.5, metric, min_gain=0.0)


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_gain_of_exactly_min_gain_keeps_the_champion(metric: str) -> None:
    assert not is_better(*_scores(metric, 0.25), metric, min_gain=0.25)


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_gain_just_above_min_gain_promotes(metric: str) -> None:
    assert is_better(*_scores(metric, 0.25 + 2**-20), metric, min_gain=0.25)


@pytest.mark.parametrize("metric", sorted(HIGHER_IS_BETTER))
def test_a_gain_below_min_gain_keeps_the_champion(metric: str) -> None:
    assert not is_better(*_scores(metric, 0.125), metric, min_gain=0.25)


def test_psnr_in_decibels() -> None:
    """A realistic case: 0.3 dB better does not clear a 0.5 dB bar; 0.75 dB does."""
    assert not is_better(31.3, 31.0, "psnr", min_gain=0.5)
    assert is_better(31.75, 31.0, "psnr", min_gain=0.5)


def test_lower_l1_is_better() -> None:
    assert is_better(0.0125, 0.015, "l1", min_gain=0.0)
    assert not is_better(0.015, 0.0125, "l1", min_gain=0.0)
    assert not is_better(0.0125, 0.015, "l1", min_gain=0.005)


def test_decide_promotes_the_first_challenger_without_a_champion() -> None:
    decision = decide({"challenger": {"val_metrics/psnr": 30.5}}, "psnr", min_gain=100.0)
    assert decision.promote and decision.outcome == "promoted"
    assert decision.reason == "no champion yet"
    assert (decision.challenger_score, decision.champion_score) == (30.5, None)


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "min_gain", "outcome"),
    [
        ("psnr", 31.75, 31.0, 0.5, "promoted"),
        ("psnr", 31.5, 31.0, 0.5, "kept champion"),  # exactly min_gain
        ("l1", 0.0125, 0.015, 0.0, "promoted"),
        ("l1", 0.015, 0.0125, 0.0, "kept champion"),
    ],
)
def test_decide_compares_the_named_metric_and_says_so(
    metric: str, challenger: float, champion: float, min_gain: float, outcome: str
) -> None:
    """The decision reads ``val_metrics/<metric>`` of both models (not another metric of the
    same scores), and its reason names both values to five decimals."""
    other = {"val_metrics/ssim": 0.5}
    scores = {
        "challenger": {f"val_metrics/{metric}": challenger, **other},
        "champion": {f"val_metrics/{metric}": champion, **other},
    }
    decision = decide(scores, metric, min_gain)
    assert decision.outcome == outcome and decision.promote == (outcome == "promoted")
    assert (decision.challenger_score, decision.champion_score) == (challenger, champion)
    assert decision.reason == f"challenger {metric} {challenger:.5f} vs champion {champion:.5f}"


def test_evaluation_rows_list_each_model_then_bicubic_with_every_metric() -> None:
    """One row per model in order, then bicubic from the challenger's ``bicubic_`` values;
    values rounded to 5 decimals, missing or NaN ones as ``None``."""
    scores = {
        "challenger": {
            "val_metrics/psnr": 31.123456789,
            "val_metrics/l1": float("nan"),
            "val_metrics/bicubic_psnr": 28.000004,
            "val_metrics/bicubic_ssim": 0.8,
        },
        "champion": {"val_metrics/psnr": 30.0, "val_metrics/bicubic_psnr": 1.0},
    }
    rows = evaluation_rows(scores)
    metrics = list(HIGHER_IS_BETTER)
    assert [row["model"] for row in rows] == ["challenger", "champion", "bicubic"]
    assert all(sorted(row) == sorted(["model", *metrics]) for row in rows)
    challenger, champion, bicubic = rows
    assert challenger["psnr"] == 31.12346 and challenger["l1"] is None
    assert challenger["ssim"] is None and challenger["hallucination"] is None
    assert champion["psnr"] == 30.0 and champion["l1"] is None
    assert bicubic["psnr"] == 28.0 and bicubic["ssim"] == 0.8 and bicubic["l1"] is None
