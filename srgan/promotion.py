"""The champion/challenger rule of ``retrain-srgan``: promote only a clear improvement."""

from __future__ import annotations

from srgan.config import METRIC_HIGHER_IS_BETTER


def is_better(challenger: float, champion: float, metric: str, min_gain: float) -> bool:
    """Whether the challenger beats the champion by more than ``min_gain`` on ``metric``.

    The gain is measured in the metric's good direction (higher PSNR and SSIM, lower L1, SAM and
    ERGAS) and in its units (dB for PSNR). A gain of exactly ``min_gain``, a tie included when
    ``min_gain`` is 0, keeps the champion.

    Args:
        challenger: the challenger's validation score.
        champion: the champion's score on the same validation patches.
        metric: a key of :data:`~srgan.config.METRIC_HIGHER_IS_BETTER`.
        min_gain: the margin the challenger must exceed (>= 0).

    Raises:
        KeyError: ``metric`` is not a validation metric.
    """
    gain = challenger - champion if METRIC_HIGHER_IS_BETTER[metric] else champion - challenger
    return gain > min_gain
