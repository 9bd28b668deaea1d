"""Pixel, spectral and smoothness content losses for super-resolved reflectance.

All functions take float tensors of shape ``(B, C, H, W)`` holding reflectance normalised to roughly
``[0, 1]`` (any ``C >= 1``) and return a scalar (0-d) tensor that is differentiable w.r.t. ``sr``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from srgan.losses.perceptual import PerceptualLoss


def _check_pair(sr: Tensor, hr: Tensor) -> None:
    if sr.ndim != 4 or sr.shape != hr.shape:
        raise ValueError(
            f"content losses need sr and hr of the same shape (B, C, H, W); got sr "
            f"{tuple(sr.shape)} and hr {tuple(hr.shape)}. Check the generator's scale factor "
            "against the patch store's."
        )


def l1_loss(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean absolute error between two images.

    Args:
        sr: Super-resolved image, float ``(B, C, H, W)``, reflectance in ``[0, 1]``.
        hr: Target image, same shape and dtype as ``sr``.

    Returns:
        Scalar tensor, in reflectance units.

    Raises:
        ValueError: If the shapes differ or are not 4-D.
    """
    _check_pair(sr, hr)
    return F.l1_loss(sr, hr)


def sam_loss(sr: Tensor, hr: Tensor, eps: float = 1e-8) -> Tensor:
    """Mean spectral angle between per-pixel spectra.

    Each pixel's ``C`` values are a spectrum; the angle between the ``sr`` and ``hr`` spectra is
    ``arccos(<sr, hr> / (|sr| |hr|))`` and the loss is its mean over all ``B * H * W`` pixels.

    Numerical safety: ``eps`` is added under each square root of the norms, so all-zero pixels
    (nodata, deep shadow) give a finite gradient instead of NaN; such a pixel scores ``pi / 2``.
    The cosine is clamped to ``[-1 + e, 1 - e]`` with ``e = max(eps, finfo(dtype).eps)``
    because ``1 - 1e-8`` rounds to ``1.0`` in float32, where ``arccos`` has an infinite
    derivative. Hence identical spectra score about ``5e-4`` rad in float32, not exactly 0.

    Args:
        sr: Super-resolved image, float ``(B, C, H, W)``, reflectance in ``[0, 1]``.
        hr: Target image, same shape and dtype as ``sr``.
        eps: Small positive constant for the norms and the cosine clamp.

    Returns:
        Scalar tensor, mean angle in radians, in ``[0, pi]``.

    Raises:
        ValueError: If the shapes differ or are not 4-D, or ``eps <= 0``.
    """
    _check_pair(sr, hr)
    if eps <= 0:
        raise ValueError(f"sam_loss eps must be > 0, got {eps}")
    dot = (sr * hr).sum(dim=1)
    norms = torch.sqrt(sr.pow(2).sum(dim=1) + eps) * torch.sqrt(hr.pow(2).sum(dim=1) + eps)
    bound = 1.0 - max(eps, torch.finfo(sr.dtype).eps)
    cosine = (dot / norms).clamp(-bound, bound)
    return torch.acos(cosine).mean()


def tv_loss(x: Tensor) -> Tensor:
    """Anisotropic total variation: mean |vertical step| plus mean |horizontal step|.

    A horizontal ramp with step ``s`` (constant along ``y``) therefore scores exactly ``s``.
    A direction with a single row or column contributes 0.

    Args:
        x: Image, float ``(B, C, H, W)``.

    Returns:
        Scalar tensor in the units of ``x`` per pixel.

    Raises:
        ValueError: If ``x`` is not 4-D.
    """
    if x.ndim != 4:
        raise ValueError(f"tv_loss needs a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    total = x.new_zeros(())
    if x.shape[-2] > 1:
        total = total + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    if x.shape[-1] > 1:
        total = total + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return total


class ContentLoss(nn.Module):
    """Weighted sum of L1, spectral angle, total variation and perceptual terms.

    A term whose weight is 0 is not computed at all (the perceptual network is never called),
    and its key is absent from the returned components.

    Args:
        l1_weight: Weight of :func:`l1_loss`.
        sam_weight: Weight of :func:`sam_loss` (radians).
        tv_weight: Weight of :func:`tv_loss` applied to ``sr``.
        perceptual_weight: Weight of ``perceptual(sr, hr)``.
        perceptual: Feature-space distance; required when ``perceptual_weight > 0``.

    Raises:
        ValueError: If a weight is negative or not finite, all weights are 0, or
            ``perceptual_weight > 0`` without a ``perceptual`` module.

    Example::

        loss = ContentLoss(l1_weight=1.0, sam_weight=0.1)
        total, parts = loss(sr, hr)  # parts == {"l1": ..., "sam": ...}
    """

    def __init__(
        self,
        l1_weight: float = 1.0,
        sam_weight: float = 0.0,
        tv_weight: float = 0.0,
        perceptual_weight: float = 0.0,
        perceptual: PerceptualLoss | None = None,
    ) -> None:
        super().__init__()
        weights = {
            "l1_weight": l1_weight,
            "sam_weight": sam_weight,
            "tv_weight": tv_weight,
            "perceptual_weight": perceptual_weight,
        }
        for name, value in weights.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"ContentLoss {name} must be a finite number >= 0, got {value}")
        if all(value == 0 for value in weights.values()):
            raise ValueError(
                "ContentLoss needs at least one weight > 0 (l1_weight, sam_weight, tv_weight, "
                "perceptual_weight); the generator would get no content gradient otherwise"
            )
        if perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                "perceptual_weight > 0 needs a PerceptualLoss: pass perceptual=PerceptualLoss(...) "
                "or set perceptual_weight to 0"
            )
        self.l1_weight = l1_weight
        self.sam_weight = sam_weight
        self.tv_weight = tv_weight
        self.perceptual_weight = perceptual_weight
        self.perceptual = perceptual

    def forward(self, sr: Tensor, hr: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the weighted content loss.

        Args:
            sr: Super-resolved image, float ``(B, C, H, W)``, reflectance in ``[0, 1]``.
            hr: Target image, same shape and dtype as ``sr``.

        Returns:
            ``(total, components)``: the weighted scalar total, and the *unweighted* scalar terms
            that were computed, keyed ``"l1"``, ``"sam"``, ``"tv"``, ``"perceptual"``. Components
            are still attached to the graph; detach them before storing.

        Raises:
            ValueError: If the shapes differ or are not 4-D.
        """
        _check_pair(sr, hr)
        components: dict[str, Tensor] = {}
        total = sr.new_zeros(())
        if self.l1_weight > 0:
            components["l1"] = l1_loss(sr, hr)
            total = total + self.l1_weight * components["l1"]
        if self.sam_weight > 0:
            components["sam"] = sam_loss(sr, hr)
            total = total + self.sam_weight * components["sam"]
        if self.tv_weight > 0:
            components["tv"] = tv_loss(sr)
            total = total + self.tv_weight * components["tv"]
        if self.perceptual_weight > 0 and self.perceptual is not None:
            components["perceptual"] = self.perceptual(sr, hr)
            total = total + self.perceptual_weight * components["perceptual"]
        return total, components
