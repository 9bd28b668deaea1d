"""Tests for srgan.losses.content: hand-computed values, skipping of zero-weight terms."""

import math
from typing import Any
from unittest.mock import Mock

import pytest
import torch

from srgan.losses.content import ContentLoss, l1_loss, sam_loss, tv_loss


def _pixels(*spectra: tuple[float, ...]) -> torch.Tensor:
    """Build a (1, C, 1, N) image whose N pixels have the given spectra."""
    return torch.tensor(spectra, dtype=torch.float32).T.reshape(1, len(spectra[0]), 1, -1)


def test_l1_matches_hand_value() -> None:
    sr = torch.tensor([0.0, 0.5, 1.0, 0.25]).reshape(1, 1, 2, 2)
    hr = torch.tensor([0.1, 0.5, 0.7, 0.25]).reshape(1, 1, 2, 2)
    assert l1_loss(sr, hr).item() == pytest.approx((0.1 + 0.0 + 0.3 + 0.0) / 4)


def test_sam_of_identical_images_is_about_zero() -> None:
    x = torch.rand(2, 4, 3, 3) + 0.1
    # float32 clamp at 1 - finfo.eps bounds the smallest angle near 5e-4 rad.
    assert sam_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-3)


def test_sam_of_orthogonal_spectra_is_half_pi() -> None:
    sr = _pixels((1.0, 0.0), (0.0, 0.3))
    hr = _pixels((0.0, 0.5), (0.2, 0.0))
    assert sam_loss(sr, hr).item() == pytest.approx(math.pi / 2, abs=1e-5)


def test_sam_mixes_pixel_angles_by_mean() -> None:
    sr = _pixels((1.0, 0.0), (0.4, 0.4))
    hr = _pixels((1.0, 1.0), (0.4, 0.4))
    assert sam_loss(sr, hr).item() == pytest.approx((math.pi / 4 + 0.0) / 2, abs=1e-3)


def test_sam_is_scale_invariant() -> None:
    sr, hr = torch.rand(1, 3, 4, 4) + 0.1, torch.rand(1, 3, 4, 4) + 0.1
    assert sam_loss(3.0 * sr, hr).item() == pytest.approx(sam_loss(sr, hr).item(), abs=1e-4)


@pytest.mark.parametrize(
    ("sr_spectrum", "hr_spectrum"),
    [((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), ((0.0, 0.0, 0.0), (0.2, 0.1, 0.3)), ((0.2,) * 3,) * 2],
    ids=["both-zero", "sr-zero", "identical"],
)
def test_sam_gradient_is_finite(
    sr_spectrum: tuple[float, ...], hr_spectrum: tuple[float, ...]
) -> None:
    sr = _pixels(sr_spectrum, (0.1, 0.2, 0.3)).requires_grad_(True)
    hr = _pixels(hr_spectrum, (0.3, 0.2, 0.1))
    sam_loss(sr, hr).backward()
    assert sr.grad is not None
    assert torch.isfinite(sr.grad).all()


def test_sam_gradient_is_finite_for_identical_multiband_images() -> None:
    # Without the float32-aware clamp most of these cosines round to exactly 1.0 (acos' = inf).
    torch.manual_seed(0)
    hr = torch.rand(2, 13, 8, 8)
    sr = hr.clone().requires_grad_(True)
    sam_loss(sr, hr).backward()
    assert sr.grad is not None
    assert torch.isfinite(sr.grad).all()


def test_sam_rejects_bad_eps() -> None:
    x = torch.rand(1, 2, 2, 2)
    with pytest.raises(ValueError, match="eps"):
        sam_loss(x, x, eps=0.0)


def test_tv_of_constant_is_zero() -> None:
    assert tv_loss(torch.full((2, 3, 5, 5), 0.4)).item() == 0.0


def test_tv_of_horizontal_ramp_equals_step() -> None:
    step = 0.05
    ramp = (torch.arange(6, dtype=torch.float32) * step).expand(1, 2, 4, 6)
    assert tv_loss(ramp).item() == pytest.approx(step)


def test_tv_of_diagonal_ramp_sums_both_steps() -> None:
    rows = torch.arange(4, dtype=torch.float32).reshape(4, 1) * 0.1
    cols = torch.arange(5, dtype=torch.float32).reshape(1, 5) * 0.02
    assert tv_loss((rows + cols).expand(1, 1, 4, 5)).item() == pytest.approx(0.12)


def test_tv_single_row_counts_horizontal_only() -> None:
    x = torch.tensor([0.0, 1.0, 0.0]).reshape(1, 1, 1, 3)
    assert tv_loss(x).item() == pytest.approx(1.0)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="same shape"):
        l1_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        tv_loss(torch.zeros(3, 4, 4))


def test_content_loss_total_is_weighted_sum_of_components() -> None:
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 4, 6, 6), torch.rand(2, 4, 6, 6)
    loss = ContentLoss(l1_weight=2.0, sam_weight=0.5, tv_weight=0.1)
    total, parts = loss(sr, hr)
    assert set(parts) == {"l1", "sam", "tv"}
    assert parts["l1"].item() == pytest.approx(l1_loss(sr, hr).item())
    assert parts["sam"].item() == pytest.approx(sam_loss(sr, hr).item())
    assert parts["tv"].item() == pytest.approx(tv_loss(sr).item())
    expected = 2.0 * parts["l1"] + 0.5 * parts["sam"] + 0.1 * parts["tv"]
    assert total.item() == pytest.approx(expected.item())


def test_zero_weights_skip_their_terms() -> None:
    total, parts = ContentLoss(l1_weight=0.0, sam_weight=1.0)(
        torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    )
    assert set(parts) == {"sam"}
    assert total.item() == pytest.approx(parts["sam"].item())


def test_perceptual_network_not_called_when_weight_is_zero() -> None:
    spy = Mock(return_value=torch.tensor(0.7))
    _, parts = ContentLoss(perceptual_weight=0.0, perceptual=spy)(
        torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    )
    spy.assert_not_called()
    assert "perceptual" not in parts


def test_perceptual_network_called_and_weighted() -> None:
    spy = Mock(return_value=torch.tensor(0.7))
    sr, hr = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    total, parts = ContentLoss(l1_weight=1.0, perceptual_weight=0.5, perceptual=spy)(sr, hr)
    spy.assert_called_once_with(sr, hr)
    assert parts["perceptual"].item() == pytest.approx(0.7)
    assert total.item() == pytest.approx(l1_loss(sr, hr).item() + 0.35)


def test_gradient_reaches_sr() -> None:
    sr = torch.rand(1, 3, 4, 4, requires_grad=True)
    total, _ = ContentLoss(l1_weight=1.0, sam_weight=1.0, tv_weight=1.0)(sr, torch.rand(1, 3, 4, 4))
    total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["l1_weight", "sam_weight", "tv_weight", "perceptual_weight"])
def test_negative_weight_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        kwargs: dict[str, Any] = {name: -0.1}
        ContentLoss(**kwargs)


def test_perceptual_weight_without_module_is_refused() -> None:
    with pytest.raises(ValueError, match="PerceptualLoss"):
        ContentLoss(perceptual_weight=1.0)


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one weight"):
        ContentLoss(l1_weight=0.0)
