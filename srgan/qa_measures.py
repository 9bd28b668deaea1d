"""Reference-free measures of a super-resolved image against its own low-resolution input.

The building blocks of the scene QA (:mod:`srgan.qa_scene`): degrade SR rows back to the input
grid exactly as :meth:`datasets.degradation.Degradation.degrade` would (float32, computed with
torch so it runs multi-threaded), bicubic upsampling of LR rows, the spectral angle, and the
sub-pixel shift between two images by phase correlation.

Units: images are float32 reflectance ×10000 unless stated; shifts are in pixels of the
arrays given (LR pixels in the QA); angles in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datasets.degradation import Degradation, gaussian_kernel


def degradation_kernels(
    degradation: Degradation, scale: int, bands: Sequence[str]
) -> tuple[Tensor, int]:
    """Per-band 1-D kernels of blur-then-``scale``-block-mean, zero-padded to one length.

    Blur (Gaussian) followed by the mean over blocks of ``scale`` pixels is one correlation with
    ``kernel ⊛ box(scale) / scale`` sampled every ``scale`` pixels (as in
    :meth:`~datasets.degradation.Degradation.degrade`).

    Returns:
        ``(kernels, radius)``: ``(C, K)`` float32 kernels, ``K = 2·radius + scale``, where
        ``radius`` is the largest Gaussian radius in HR pixels (context needed on each side).

    Raises:
        ValueError: ``degradation.kind`` is ``"real"`` (nothing to simulate).
    """
    if degradation.kind == "real":
        raise ValueError("a 'real' degradation reads the LR from the scene; it has no kernel")
    gaussians = [gaussian_kernel(s) for s in degradation.band_sigmas(scale, bands, len(bands))]
    radius = max(k.size // 2 for k in gaussians)
    rows = []
    for k in gaussians:
        combined = np.convolve(k.astype(np.float64), np.ones(scale)) / scale
        pad = radius - k.size // 2
        rows.append(np.pad(combined, (pad, pad)).astype(np.float32))
    return torch.from_numpy(np.stack(rows)), radius


def degrade_rows(
    hr: Tensor, kernels: Tensor, radius: int, scale: int, top: int, bottom: int
) -> Tensor:
    """Degrade HR rows to the LR grid, rows ``top`` and ``bottom`` being context only.

    Reflect padding at the array's edges, as
    :meth:`~datasets.degradation.Degradation.degrade` (which rounds to uint16; this does not).
    With at least ``radius`` context rows the result equals that of the whole image.

    Args:
        hr: ``(C, H, W)`` float32; ``H - top - bottom`` and ``W`` multiples of ``scale``.
        kernels: ``(C, K)`` from :func:`degradation_kernels`.
        radius: Its context radius (HR pixels).
        scale: Block size.
        top: Context rows at the top of ``hr``; ``bottom`` at its bottom.

    Returns:
        ``(C, (H - top - bottom) / scale, W / scale)`` float32.
    """
    c, h, w = hr.shape
    count_y, count_x = (h - top - bottom) // scale, w // scale
    k = kernels.shape[1]
    x = hr[None]
    if radius:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = x[:, :, top : top + (count_y - 1) * scale + k, : (count_x - 1) * scale + k]
    x = F.conv2d(x, kernels.view(c, 1, k, 1), stride=(scale, 1), groups=c)
    x = F.conv2d(x, kernels.view(c, 1, 1, k), stride=(1, scale), groups=c)
    return x[0]


def bicubic_rows(lr: Tensor, scale: int, top: int, bottom: int) -> Tensor:
    """Bicubic upsampling (``align_corners=False``) of LR rows, context rows cut away.

    Two context rows on a side make the result equal to that of the whole image there; at the
    image's own edges none are needed (the interpolation clamps, as on the whole image).

    Args:
        lr: ``(C, h, w)`` float32, ``top``/``bottom`` rows of context included.

    Returns:
        ``(C, (h - top - bottom)·scale, w·scale)`` float32.
    """
    up = F.interpolate(lr[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    return up[:, top * scale : up.shape[1] - bottom * scale]


def spectral_angle_degrees(a: Tensor, b: Tensor) -> Tensor:
    """Per-pixel angle between the spectra of ``(C, h, w)`` images, in degrees.

    A pixel whose spectrum is all zeros in either image gets angle 0 (it is masked as nodata by
    the callers anyway).
    """
    dot = (a * b).sum(0)
    norms = a.norm(dim=0) * b.norm(dim=0)
    cos = torch.where(norms > 0, dot / norms.clamp_min(1e-12), torch.ones_like(dot))
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def _upsampled_dft(data: np.ndarray, size: int, factor: int, offsets: np.ndarray) -> np.ndarray:
    """Inverse DFT of ``data`` on a ``size × size`` grid, ``factor`` times finer, at ``offsets``."""
    for n, offset in zip(data.shape[::-1], offsets[::-1], strict=True):
        kernel = (np.arange(size) - offset)[:, None] * np.fft.fftfreq(n, factor)
        # einsum, not tensordot: BLAS's own thread pool would fight torch's for the cores
        data = np.einsum("ij,...j->i...", np.exp(-2j * np.pi * kernel), data)
    return data


def phase_shift(
    reference: np.ndarray, moving: np.ndarray, upsample: int = 20
) -> tuple[float, float]:
    """Sub-pixel translation of ``moving`` relative to ``reference`` by phase correlation.

    Both images are made zero-mean and tapered by a Hann window (their borders are not
    periodic), the cross-power spectrum is normalised to phase only, and the correlation peak
    is refined on a ``upsample``-times finer grid around the integer peak (Guizar-Sicairos et
    al., 2008, the method of ``skimage.registration.phase_cross_correlation``).

    Args:
        reference: ``(h, w)`` float image.
        moving: ``(h, w)`` float image, e.g. the reference displaced by ``(dy, dx)``.
        upsample: Precision is ``1 / upsample`` pixel.

    Returns:
        ``(dy, dx)`` in pixels: positive when ``moving``'s content lies further down / right.
        ``(nan, nan)`` when either image is flat (no structure to align).
    """
    h, w = reference.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    a = (reference - reference.mean()) * window
    b = (moving - moving.mean()) * window
    if not (a.any() and b.any()):
        return math.nan, math.nan
    product = np.fft.fft2(b) * np.fft.fft2(a).conj()
    product /= np.maximum(np.abs(product), 1e-12)
    corr = np.abs(np.fft.ifft2(product))
    peak = np.array(np.unravel_index(int(np.argmax(corr)), corr.shape), dtype=np.float64)
    shape = np.array([h, w], dtype=np.float64)
    peak[peak > shape // 2] -= shape[peak > shape // 2]
    peak = np.round(peak * upsample) / upsample
    size = math.ceil(upsample * 1.5)
    centre = float(size // 2)
    fine = np.abs(_upsampled_dft(product.conj(), size, upsample, centre - peak * upsample))
    refined = np.array(np.unravel_index(int(np.argmax(fine)), fine.shape), dtype=np.float64)
    dy, dx = peak + (refined - centre) / upsample
    return float(dy), float(dx)
