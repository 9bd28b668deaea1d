"""How a low-resolution (LR) patch is made from a high-resolution (HR) one.

Two kinds, chosen by :class:`Degradation`:

- ``gaussian_area`` (default): a Gaussian blur approximating the Sentinel-2 MTF, then area
  averaging over ``scale × scale`` blocks. The blur's sigma comes from the MTF value at the LR
  Nyquist frequency (or is given directly), per band if asked.
- ``real``: the LR patch is read from the same bands at a coarser native resolution (e.g. an L2A
  ``R20m`` folder), after :func:`check_grid_alignment` proved both grids line up exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from affine import Affine
from pydantic import BaseModel, ConfigDict, Field

from datasets.errors import TilingError

# Pixels further than this many sigmas from the centre get a weight below 1.2e-4 of the peak.
_KERNEL_SIGMAS = 4.0
#: Largest value of the store's uint16 reflectance ×10000 pixels.
UINT16_MAX = 65535


def mtf_to_sigma(mtf: float, scale: int) -> float:
    """Sigma of the Gaussian PSF whose MTF equals ``mtf`` at the LR Nyquist frequency.

    A Gaussian PSF of standard deviation ``σ`` (HR pixels) has ``MTF(f) = exp(-2π²σ²f²)``; the LR
    Nyquist frequency is ``1 / (2 · scale)`` cycles per HR pixel, hence
    ``σ = scale · sqrt(-2 ln mtf) / π``.

    Args:
        mtf: modulation transfer at the LR Nyquist frequency, in (0, 1).
        scale: integer super-resolution factor (HR pixels per LR pixel along one axis).

    Returns:
        Sigma in HR pixels.

    Raises:
        ValueError: ``mtf`` is not in (0, 1) or ``scale`` < 1.
    """
    if not 0.0 < mtf < 1.0:
        raise ValueError(f"mtf must lie in (0, 1), got {mtf}; Sentinel-2 bands are about 0.2-0.4")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    return scale * math.sqrt(-2.0 * math.log(mtf)) / math.pi


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D float32 Gaussian kernel of length ``2 · ceil(4σ) + 1`` (``[1]`` if σ=0)."""
    if sigma <= 0:
        return np.ones(1, dtype=np.float32)
    radius = math.ceil(_KERNEL_SIGMAS * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _blur_downsample_axis(
    image: np.ndarray, kernel: np.ndarray, scale: int, start: int, count: int, axis: int
) -> np.ndarray:
    """Gaussian blur then ``scale``-block mean along ``axis``, evaluated only where it is kept.

    The blur (reflect padding at the array's edges) followed by the mean over blocks of
    ``scale`` pixels equals one convolution with ``kernel ⊛ box(scale) / scale`` sampled every
    ``scale`` pixels, so the blur is never computed at HR pixels the mean would discard: about
    ``(len(kernel) + scale - 1) / scale`` multiply-adds per input pixel instead of ``len(kernel)``.

    Args:
        image: float32 2-D image, context included.
        kernel: normalised 1-D Gaussian.
        scale: block size.
        start: first kept pixel along ``axis`` (the context before it is not output).
        count: number of output pixels along ``axis`` (blocks of ``scale`` pixels from ``start``).
        axis: 0 (rows) or 1 (columns).

    Returns:
        float32 image with ``count`` pixels along ``axis``.
    """
    radius = kernel.size // 2
    combined = (np.convolve(kernel.astype(np.float64), np.ones(scale)) / scale).astype(np.float32)
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(image, pad, mode="reflect") if radius else image
    shape = list(image.shape)
    shape[axis] = count
    out = np.zeros(shape, dtype=np.float32)
    span = count * scale
    # A sum of strided slices is vectorised over the whole image, unlike per-pixel loops.
    for t, weight in enumerate(combined):
        first = start + t
        taps = (
            padded[first : first + span : scale]
            if axis == 0
            else padded[:, first : first + span : scale]
        )
        out += weight * taps
    return out


def area_downsample(image: np.ndarray, scale: int) -> np.ndarray:
    """Mean over non-overlapping ``scale × scale`` blocks.

    Args:
        image: ``(band, H, W)`` float array, ``H`` and ``W`` multiples of ``scale``.
        scale: block size in pixels.

    Returns:
        ``(band, H / scale, W / scale)`` array of the input's dtype.
    """
    c, h, w = image.shape
    return image.reshape(c, h // scale, scale, w // scale, scale).mean(axis=(2, 4))


class Degradation(BaseModel):
    """Recipe for the LR patch; recorded in the patch store's attrs via :meth:`to_attrs`.

    Attributes:
        kind: ``gaussian_area`` (simulate: blur then area-downsample) or ``real`` (read the LR
            from the same bands at a coarser native resolution).
        mtf: MTF value at the LR Nyquist frequency, used for every band not in ``band_mtf``.
        band_mtf: per-band MTF overrides, e.g. ``{"B08": 0.25}``.
        sigma: Gaussian sigma in HR pixels for every band; overrides ``mtf`` and ``band_mtf``.
        lr_resolution: for ``real``: the LR pixel size in metres; ``None`` means the HR pixel size
            times the scale.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["gaussian_area", "real"] = "gaussian_area"
    mtf: float = Field(default=0.3, gt=0.0, lt=1.0)
    band_mtf: dict[str, Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=dict)
    sigma: float | None = Field(default=None, ge=0.0)
    lr_resolution: float | None = Field(default=None, gt=0.0)

    def band_sigmas(self, scale: int, bands: Sequence[str] | None, n_bands: int) -> list[float]:
        """Gaussian sigma (HR pixels) of each band, in band order.

        Raises:
            ValueError: ``bands`` is given but its length differs from ``n_bands``.
        """
        if bands is not None and len(bands) != n_bands:
            raise ValueError(f"{len(bands)} band names given for an array of {n_bands} bands")
        if self.sigma is not None:
            return [self.sigma] * n_bands
        names: Sequence[str | None] = list(bands) if bands is not None else [None] * n_bands
        return [
            mtf_to_sigma(self.band_mtf.get(name, self.mtf) if name else self.mtf, scale)
            for name in names
        ]

    def halo(self, scale: int, bands: Sequence[str]) -> int:
        """HR pixels of context the blur needs on each side of a window to be exact inside it."""
        if self.kind == "real":
            return 0
        return max(gaussian_kernel(s).size // 2 for s in self.band_sigmas(scale, bands, len(bands)))

    def degrade(
        self,
        hr: np.ndarray,
        scale: int,
        *,
        bands: Sequence[str] | None = None,
        halo: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> np.ndarray:
        """Simulate the LR image of ``hr`` (``gaussian_area`` only).

        The blur runs in float32 with reflect padding at the array's edges; pixels in ``halo`` are
        context only: they feed the blur and are cut away before downsampling, so a window read with
        :meth:`halo` pixels of context degrades exactly as it would inside the whole scene.

        Args:
            hr: ``(band, H, W)`` uint16 reflectance ×10000, halo included.
            scale: super-resolution factor; ``H`` and ``W`` minus the halo must divide by it.
            bands: band names, needed only for ``band_mtf`` overrides.
            halo: context pixels (top, bottom, left, right) included in ``hr``.

        Returns:
            ``(band, h, w)`` uint16 reflectance ×10000 with ``h = (H - top - bottom) / scale`` and
            ``w = (W - left - right) / scale``: rounded, clipped to [0, 65535].

        Raises:
            ValueError: ``kind`` is ``real``, ``hr`` is not 3-D, or the size does not divide.
        """
        if self.kind == "real":
            raise ValueError(
                "Degradation(kind='real') reads the LR from the scene; it cannot simulate one. "
                "Use kind='gaussian_area' to degrade an array."
            )
        if hr.ndim != 3:
            raise ValueError(f"hr must be (band, H, W), got shape {hr.shape}")
        top, bottom, left, right = halo
        h = hr.shape[1] - top - bottom
        w = hr.shape[2] - left - right
        if h <= 0 or w <= 0 or h % scale or w % scale:
            raise ValueError(
                f"hr is {h}×{w} px without its halo {halo}; both sides must be positive multiples "
                f"of scale={scale}"
            )
        sigmas = self.band_sigmas(scale, bands, hr.shape[0])
        lr = np.empty((hr.shape[0], h // scale, w // scale), dtype=np.float32)
        for i, sigma in enumerate(sigmas):
            kernel = gaussian_kernel(sigma)
            band = hr[i].astype(np.float32)
            rows = _blur_downsample_axis(band, kernel, scale, top, h // scale, axis=0)
            lr[i] = _blur_downsample_axis(rows, kernel, scale, left, w // scale, axis=1)
        return np.clip(np.rint(lr), 0.0, UINT16_MAX).astype(np.uint16)

    def to_attrs(self, scale: int, bands: Sequence[str]) -> dict[str, Any]:
        """JSON-ready description of the method and its resolved parameters, for store attrs."""
        attrs: dict[str, Any] = {
            "method": self.kind,
            **self.model_dump(mode="json", exclude={"kind"}),
        }
        if self.kind == "gaussian_area":
            sigmas = self.band_sigmas(scale, bands, len(bands))
            attrs["sigma_hr_px"] = dict(zip(bands, sigmas, strict=True))
            attrs["downsampling"] = "area"
        return attrs


def degrade(
    hr: np.ndarray,
    scale: int,
    degradation: Degradation | None = None,
    *,
    bands: Sequence[str] | None = None,
) -> np.ndarray:
    """Degrade a ``(band, H, W)`` uint16 array to ``(band, H/scale, W/scale)`` uint16.

    Shorthand for ``(degradation or Degradation()).degrade(hr, scale, bands=bands)``; see
    :meth:`Degradation.degrade` for the contract and raised errors.
    """
    return (degradation or Degradation()).degrade(hr, scale, bands=bands)


def check_grid_alignment(hr_transform: Affine, lr_transform: Affine, scale: int) -> None:
    """Refuse an LR grid that is not exactly the HR grid coarsened by ``scale``.

    Args:
        hr_transform: affine transform of the HR grid (north-up).
        lr_transform: affine transform of the LR grid.
        scale: expected ratio of LR to HR pixel size.

    Raises:
        TilingError: the origins differ or the LR pixel size is not ``scale`` times the HR one.
    """
    expected = hr_transform @ Affine.scale(scale)
    if not lr_transform.almost_equals(expected, precision=1e-6 * abs(hr_transform.a)):
        raise TilingError(
            f"the LR grid {tuple(lr_transform)[:6]} is not the HR grid {tuple(hr_transform)[:6]} "
            f"coarsened by scale={scale} (expected {tuple(expected)[:6]}): origins must be equal "
            "and the LR pixel size scale × the HR one. Use Degradation(kind='gaussian_area') for "
            "this product, or an L2A product whose R10m/R20m grids share their origin."
        )
