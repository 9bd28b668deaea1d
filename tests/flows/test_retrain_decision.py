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

from tasks.retrain import is_better

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "sam": False, "ergas": False}


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
