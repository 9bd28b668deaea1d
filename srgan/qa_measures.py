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


def _correlate_last(x: Tensor, kernels: Tensor, scale: int, count: int) -> Tensor:
    """``out[c, …, j] = Σ_t kernels[c, t] · x[c, …, j·scale + t]`` for ``j < count``.

    The taps are split into ``Q = ceil(K / scale)`` phases so the work is one batched matmul
    over the ``scale`` pixels of each block (and ``Q`` shifted adds at the output size): on the
    CPU about twice as fast as a strided depthwise convolution.
    """
    c, k = kernels.shape
    q = -(-k // scale)
    need = (count + q - 1) * scale
    if need > x.shape[-1]:
        x = F.pad(x, (0, need - x.shape[-1]))
    blocks = x[..., :need].reshape(c, -1, count + q - 1, scale)
    taps = F.pad(kernels, (0, q * scale - k)).view(c, q, scale).transpose(1, 2)
    phases = torch.matmul(blocks, taps[:, None])  # (C, rows, count + q - 1, q)
    out = phases[:, :, :count, 0].clone()
    for i in range(1, q):
        out += phases[:, :, i : i + count, i]
    return out.view(*x.shape[:-1], count)


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
    _, h, w = hr.shape
    count_y, count_x = (h - top - bottom) // scale, w // scale
    # columns first: the full-size pass is the cheap matmul one, the row pass runs at W / scale
    x = F.pad(hr, (radius, radius), mode="reflect") if radius else hr
    x = _correlate_last(x, kernels, scale, count_x)
    if radius:
        x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = x[:, top : top + (count_y - 1) * scale + kernels.shape[1]]
    return _correlate_last(x.transpose(1, 2), kernels, scale, count_y).transpose(1, 2)


#: Coefficient of torch's bicubic convolution kernel (``F.interpolate(mode="bicubic")``).
CUBIC_A = -0.75


def _cubic_weights(t: float) -> list[float]:
    """Weights of the four taps ``i - 1 … i + 2`` at fraction ``t`` past tap ``i``."""
    a = CUBIC_A

    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic_sampled_rows(lr: Tensor, scale: int, first_row: int, top: int, count: int) -> Tensor:
    """One output row per LR row of the bicubic upsampling (``align_corners=False``) of ``lr``.

    For LR row ``r`` the output row ``r·scale + r % scale`` (the phases cycle, so every output
    row phase is sampled equally); exactly the rows ``F.interpolate(mode="bicubic")`` gives
    there. A quarter of the work of the full upsampling at ×4.

    Args:
        lr: ``(C, h, w)`` LR rows, context included (two rows on a side make the result equal
            to that of the whole image; at the image's own edges the taps clamp, as torch's).
        scale: Upscaling factor.
        first_row: Absolute LR row index of ``lr[:, top]`` (fixes each row's phase).
        top: Context rows at the top of ``lr``.
        count: LR rows to sample from ``top`` on.

    Returns:
        ``(C, count, w·scale)`` float32: row ``i`` is output row
        ``(first_row + i)·scale + (first_row + i) % scale``.
    """
    index, weights = [], []
    for i in range(count):
        r = first_row + i
        src = r + ((r % scale) + 0.5) / scale - 0.5 - first_row + top
        base = math.floor(src)
        index.append([min(max(base - 1 + k, 0), lr.shape[1] - 1) for k in range(4)])
        weights.append(_cubic_weights(src - base))
    taps = lr[:, torch.tensor(index)]  # (C, count, 4, w)
    vertical = (taps * torch.tensor(weights, dtype=lr.dtype)[None, :, :, None]).sum(2)
    return F.interpolate(
        vertical[None], scale_factor=(1, scale), mode="bicubic", align_corners=False
    )[0]


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
