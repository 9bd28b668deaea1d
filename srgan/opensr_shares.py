"""Improvement, omission and hallucination shares of a super-resolved image, as ESA's
``opensr-test`` (v1.3) defines them, with a reference (HR) image.

Implemented from opensr-test's documentation (``docs/Metrics/correctness.md``) and code
(``opensr_test/main.py``, ``correctness.py``, ``distance.py``, ``utils.py``): the package itself
cannot be installed under this project's constraints (it requires torchvision, kornia, OpenCV,
LPIPS and CLIP), so it is not run next to ours. Its ``Metrics.correctness`` with the default
``Config`` is followed step by step:

1. crop ``border`` HR pixels (``border / scale`` LR pixels) from every side;
2. ``lr_to_hr``: LR upsampled by bilinear interpolation with antialiasing;
3. ``sr_harm``: SR histogram-matched to HR band by band (``skimage``'s ``match_histograms``
   for floats); opensr-test then also aligns SR to HR by phase correlation (``satalign``),
   which is not done here — patches of a store are aligned by construction (say so when
   comparing with numbers of misaligned data);
4. ``nd`` distances per pixel, the mean over bands of ``|x − y| / |x + y|``:
   ``d_ref = nd(lr_to_hr, hr)``, ``d_im = nd(sr_harm, hr)``, ``d_om = nd(sr_harm, lr_to_hr)``;
5. only pixels where one of the three exceeds the gradient threshold count (``"auto"``: the
   75th percentile of ``d_ref``);
6. relative distances ``d_im / d_ref`` and ``d_om / d_ref`` give the improvement, omission and
   hallucination scores (``tc_improvement``, ``tc_omission``, ``tc_hallucination``, each with
   its ``γ`` = 0.05), turned into per-pixel probabilities by a softmin of temperature 0.25;
7. the shares are the means of those probabilities (``"softmin"``, opensr-test's default) or
   the fractions of pixels each class wins (``"percent"``). The three sum to 1.

Inputs are reflectance (or any non-negative scale-free quantity: ``nd`` is scale invariant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SCORE_GAMMA = 0.05
TEMPERATURE = 0.25
BORDER = 16
EPS = 1e-8


@dataclass(frozen=True)
class CorrectnessShares:
    """Shares of the judged pixels (sum 1) and how many pixels were judged.

    Attributes:
        improvement: SR closer to HR than to the upsampled LR (detail that is really there).
        omission: SR stays close to the upsampled LR (detail missed).
        hallucination: SR far from both (detail that is not in HR).
        pixels: Judged HR pixels.
    """

    improvement: float
    omission: float
    hallucination: float
    pixels: int


def patch_border(size: int, scale: int) -> int:
    """opensr-test's 16 px border, smaller on small patches (a quarter of the patch at most).

    Args:
        size: Patch edge in HR pixels.
        scale: Super-resolution factor (the border is a multiple of it).
    """
    return min(BORDER, size // 4 // scale * scale)


def match_histograms(source: Tensor, template: Tensor) -> Tensor:
    """Band-wise histogram matching of ``(C, H, W)`` ``source`` to ``template`` (floats)."""
    out = torch.empty_like(source)
    for band in range(source.shape[0]):
        src = source[band].double().numpy().ravel()
        tmpl = template[band].double().numpy().ravel()
        _, lookup, counts = np.unique(src, return_inverse=True, return_counts=True)
        t_values, t_counts = np.unique(tmpl, return_counts=True)
        quantiles = np.cumsum(counts) / src.size
        t_quantiles = np.cumsum(t_counts) / tmpl.size
        mapped = np.interp(quantiles, t_quantiles, t_values)[lookup]
        out[band] = torch.from_numpy(mapped.reshape(source.shape[1:])).to(source.dtype)
    return out


def normalized_difference(x: Tensor, y: Tensor) -> Tensor:
    """opensr-test's ``nd`` per pixel: mean over bands of ``|x − y| / |x + y + 1e-8|``."""
    return torch.nanmean((x - y).abs() / (x + y + EPS).abs(), dim=0)


def _scores(d_im: Tensor, d_om: Tensor) -> Tensor:
    """``(3, H, W)`` improvement, omission, hallucination scores (low = that class)."""
    h = d_im + d_om - 1
    improvement = d_im + d_om * (1 - torch.exp(-h * SCORE_GAMMA))
    omission = d_om + d_im * (1 - torch.exp(-h * SCORE_GAMMA))
    hallucination = torch.exp(-d_im * d_om * SCORE_GAMMA)
    return torch.stack([improvement, omission, hallucination])


def correctness_shares(
    lr: Tensor,
    sr: Tensor,
    hr: Tensor,
    *,
    border: int = BORDER,
    gradient_threshold: float | Literal["auto"] = "auto",
    norm: Literal["softmin", "percent"] = "softmin",
    harmonise: bool = True,
) -> CorrectnessShares:
    """The improvement / omission / hallucination shares of ``sr`` (see the module docstring).

    Args:
        lr: ``(C, h, w)`` input.
        sr: ``(C, H, W)`` super-resolved, ``H = h·scale``.
        hr: ``(C, H, W)`` reference.
        border: HR pixels cropped from every side (a multiple of the scale).
        gradient_threshold: Pixels where none of the three distances exceeds it are not
            judged; ``"auto"``: the 75th percentile of ``d_ref``.
        norm: ``"softmin"`` (mean probabilities) or ``"percent"`` (share of pixels won).
        harmonise: Histogram-match SR to HR first (opensr-test's default).

    Returns:
        The three shares and the number of judged pixels (shares are nan when none).

    Raises:
        ValueError: Shapes that do not fit an integer scale.
    """
    scale = hr.shape[-1] // lr.shape[-1]
    if sr.shape != hr.shape or hr.shape[-1] != lr.shape[-1] * scale or scale < 1:
        raise ValueError(f"shapes lr {tuple(lr.shape)}, sr {tuple(sr.shape)}, hr {tuple(hr.shape)}")
    lr, sr, hr = lr.double(), sr.double(), hr.double()
    if border:
        b = border // scale
        lr = lr[:, b:-b, b:-b]
        sr, hr = sr[:, border:-border, border:-border], hr[:, border:-border, border:-border]
    lr_to_hr = F.interpolate(lr[None], scale_factor=scale, mode="bilinear", antialias=True)[0]
    sr_harm = match_histograms(sr, hr) if harmonise else sr
    d_ref = normalized_difference(lr_to_hr, hr)
    d_im = normalized_difference(sr_harm, hr)
    d_om = normalized_difference(sr_harm, lr_to_hr)
    if gradient_threshold == "auto":
        flat = d_ref.flatten()
        threshold = float(flat.kthvalue(max(1, int(0.75 * flat.numel()))).values)
    else:
        threshold = float(gradient_threshold)
    judged = (d_ref > threshold) | (d_im > threshold) | (d_om > threshold)
    mask = torch.where(judged, 1.0, torch.nan).double()
    scores = _scores(d_im * mask / (d_ref * mask), d_om * mask / (d_ref * mask))
    weights = torch.exp(-scores / TEMPERATURE)
    probabilities = weights / weights.sum(0)
    if norm == "softmin":
        shares = [float(p.nanmean()) for p in probabilities]
    else:
        won = probabilities.nan_to_num(-1.0).argmax(0)
        total = max(int(judged.sum()), 1)
        shares = [float(((won == k) & judged).sum()) / total for k in range(3)]
    improvement, omission, hallucination = shares
    return CorrectnessShares(improvement, omission, hallucination, int(judged.sum()))
