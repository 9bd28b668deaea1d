import numpy as np
import pytest
import torch
from PIL import Image
from toy_data import make_pairs

from srgan.metrics import SRValidationMetrics, bicubic_upsample
from srgan.preview import preview_grid, save_preview


@pytest.fixture
def pairs():
    lr, hr = make_pairs(8, bands=4, hr_size=32, scale=4, seed=5)
    return lr, hr


def test_bicubic_as_sr_has_zero_gain(pairs):
    lr, hr = pairs
    metrics = SRValidationMetrics(scale=4, data_range=1.0, n_bands=4)
    metrics.update(bicubic_upsample(lr, 4), lr, hr)
    out = metrics.compute()
    for name in ("l1", "psnr", "ssim", "sam", "ergas"):
        assert out[f"val_metrics/{name}"] == pytest.approx(
            out[f"val_metrics/bicubic_{name}"], rel=1e-5
        )
        assert out[f"val_metrics/{name}_gain"] == pytest.approx(0.0, abs=1e-5)


def test_perfect_sr_scores_perfectly_and_gains_are_positive(pairs):
    lr, hr = pairs
    metrics = SRValidationMetrics(scale=4, data_range=1.0, n_bands=4)
    metrics.update(hr, lr, hr)
    out = metrics.compute()
    assert out["val_metrics/l1"] == pytest.approx(0.0, abs=1e-7)
    assert out["val_metrics/ssim"] == pytest.approx(1.0, abs=1e-4)
    assert out["val_metrics/sam"] < 1e-3
    assert out["val_metrics/ergas"] == pytest.approx(0.0, abs=1e-4)
    assert all(out[f"val_metrics/{m}_gain"] > 0 for m in ("l1", "psnr", "ssim", "sam", "ergas"))


def test_metrics_accumulate_over_batches_and_reset(pairs):
    lr, hr = pairs
    whole = SRValidationMetrics(4, 1.0, 4)
    whole.update(bicubic_upsample(lr, 4) * 0.9, lr, hr)
    parts = SRValidationMetrics(4, 1.0, 4)
    for i in range(0, 8, 2):
        parts.update(bicubic_upsample(lr[i : i + 2], 4) * 0.9, lr[i : i + 2], hr[i : i + 2])
    a, b = whole.compute(), parts.compute()
    for key in ("val_metrics/l1", "val_metrics/sam", "val_metrics/ergas", "val_metrics/psnr"):
        assert a[key] == pytest.approx(b[key], rel=1e-4), key
    parts.reset()
    parts.update(hr, lr, hr)
    assert parts.compute()["val_metrics/l1"] == pytest.approx(0.0, abs=1e-7)


def test_metrics_under_bf16_autocast_are_the_float32_ones(pairs):
    """bf16-mixed validation must not compute the baseline or SSIM in bfloat16."""
    lr, hr = pairs
    sr = bicubic_upsample(lr, 4) * 0.95
    plain = SRValidationMetrics(4, 1.0, 4)
    plain.update(sr, lr, hr)
    mixed = SRValidationMetrics(4, 1.0, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bicubic = mixed.update(sr, lr, hr)
    assert bicubic.dtype == torch.float32
    expected, got = plain.compute(), mixed.compute()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


def test_sam_of_black_output_is_finite(pairs):
    lr, hr = pairs
    metrics = SRValidationMetrics(4, 1.0, 4)
    metrics.update(torch.zeros_like(hr), lr, hr)
    assert np.isfinite(metrics.compute()["val_metrics/sam"])


def test_single_band_skips_sam():
    lr, hr = make_pairs(2, bands=1, hr_size=16, scale=4)
    metrics = SRValidationMetrics(4, 1.0, 1)
    metrics.update(hr, lr, hr)
    assert "val_metrics/sam" not in metrics.compute()


def test_preview_grid_layout_and_png(pairs, tmp_path):
    lr, hr = pairs
    bic = bicubic_upsample(lr, 4)
    grid = preview_grid(lr, bic, hr, hr, bands=(2, 1, 0), max_samples=3)
    assert grid.shape == (3 * 32, 4 * 32, 3) and grid.dtype == np.uint8
    # SR == HR here, so the SR and HR panels are identical; LR panel is blocky (nearest)
    assert np.array_equal(grid[:, 64:96], grid[:, 96:128])
    assert not np.array_equal(grid[:, 0:32], grid[:, 96:128])
    path = save_preview(grid, tmp_path / "p" / "preview.png")
    assert np.array_equal(np.asarray(Image.open(path)), grid)


def test_preview_goes_to_an_fsspec_url(pairs):
    import io

    import fsspec

    lr, hr = pairs
    grid = preview_grid(lr, bicubic_upsample(lr, 4), hr, hr, bands=(2, 1, 0), max_samples=2)
    url = "memory://s2sr-preview-test/run/previews/latest.png"
    assert save_preview(grid, url) == url
    with fsspec.open(url, "rb") as file:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(file.read()))), grid)
