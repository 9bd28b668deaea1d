"""Normalisation strategies and their inverses."""

from __future__ import annotations

import pytest
import torch

from datasets.normalise import NORMALISATIONS, denormalise, normalise


@pytest.fixture
def reflectance() -> torch.Tensor:
    """``(2, 3, 8, 8)`` reflectance ×10000 spanning dark water to bright cloud."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(100, 9000, (2, 3, 8, 8), generator=generator).to(torch.float32)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("normalise_10k", 0.0, 1.0), ("normalise_10k_signed", -1.0, 1.0), ("zero_one", 0.0, 1.0)],
)
def test_range_and_round_trip(
    reflectance: torch.Tensor, name: str, low: float, high: float
) -> None:
    y = normalise(reflectance, name)
    assert y.dtype == torch.float32
    assert low <= float(y.min()) and float(y.max()) <= high
    back = denormalise(y, name, reference=reflectance)
    torch.testing.assert_close(back, reflectance, rtol=1e-5, atol=0.05)


def test_fixed_scalings_clip_out_of_range_values() -> None:
    x = torch.tensor([[[[-5.0, 0.0, 5000.0, 12000.0]]]])
    assert normalise(x, "normalise_10k").flatten().tolist() == [0.0, 0.0, 0.5, 1.0]
    assert normalise(x, "normalise_10k_signed").flatten().tolist() == [-1.0, -1.0, 0.0, 1.0]


def test_zero_one_uses_the_reference_range_per_band(reflectance: torch.Tensor) -> None:
    lr = reflectance[:, :, ::2, ::2]
    y = normalise(reflectance, "zero_one", reference=lr)
    low = lr.amin(dim=(-2, -1), keepdim=True)
    high = lr.amax(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(y, (reflectance - low) / (high - low))
    assert normalise(lr, "zero_one").amin(dim=(-2, -1)).abs().max() == 0.0
    assert normalise(lr, "zero_one").amax(dim=(-2, -1)).sub(1).abs().max() < 1e-6


def test_identity_only_casts(reflectance: torch.Tensor) -> None:
    x = reflectance.to(torch.int32)
    y = normalise(x, "identity")
    assert y.dtype == torch.float32 and torch.equal(y, reflectance)
    assert torch.equal(denormalise(y, "identity"), reflectance)


def test_zero_one_inverse_needs_the_reference(reflectance: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="needs reference="):
        denormalise(normalise(reflectance, "zero_one"), "zero_one")


def test_unknown_name_lists_the_choices(reflectance: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"choose one of \['identity', 'normalise_10k'"):
        normalise(reflectance, "minmax")
    with pytest.raises(ValueError, match="unknown normalisation"):
        denormalise(reflectance, "minmax")
    assert set(NORMALISATIONS) == {"normalise_10k", "normalise_10k_signed", "zero_one", "identity"}
