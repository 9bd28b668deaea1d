"""Tests for srgan.models discriminators (tiny widths, 16–64 px HR inputs)."""

import copy
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from srgan.models import (
    DISCRIMINATORS,
    ESRGANDiscriminator,
    PatchGANDiscriminator,
    SRGANDiscriminator,
    build_discriminator,
)

TINY: dict[str, dict[str, Any]] = {
    "srgan": {"base_channels": 4, "fc_features": 16},
    "patchgan": {"base_channels": 4},
    "esrgan": {"base_channels": 4},
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_classic_srgan_discriminator_parameter_count() -> None:
    # 4.69 M in the eight conv blocks, 18.88 M in Linear(512·6·6 → 1024): the reference ≈23.56 M.
    count = n_params(SRGANDiscriminator(in_bands=4))
    assert count == 23_564_225
    assert 23_500_000 <= count <= 23_600_000


@pytest.mark.parametrize("bands", [1, 4, 13])
@pytest.mark.parametrize("size", [16, 24, 33, 64])
def test_srgan_output_shape(bands: int, size: int) -> None:
    model = SRGANDiscriminator(bands, **TINY["srgan"])
    assert model(torch.rand(2, bands, size, size + 8)).shape == (2, 1)


@pytest.mark.parametrize("bands", [1, 4, 13])
@pytest.mark.parametrize("size", [32, 45, 64])
def test_esrgan_output_shape(bands: int, size: int) -> None:
    model = ESRGANDiscriminator(bands, **TINY["esrgan"])
    assert model(torch.rand(2, bands, size, size)).shape == (2, 1)


@pytest.mark.parametrize(
    ("n_layers", "size", "grid"),
    [(3, 64, 6), (3, 32, 2), (3, 24, 1), (2, 32, 6), (1, 16, 6)],
)
def test_patchgan_output_grid(n_layers: int, size: int, grid: int) -> None:
    model = PatchGANDiscriminator(4, base_channels=4, n_layers=n_layers)
    assert model(torch.rand(2, 4, size, 2 * size)).shape == (
        2,
        1,
        grid,
        2 * size // 2**n_layers - 2,
    )


@pytest.mark.parametrize("bands", [1, 6, 13])
def test_patchgan_band_counts(bands: int) -> None:
    model = PatchGANDiscriminator(bands, **TINY["patchgan"])
    assert model(torch.rand(2, bands, 32, 32)).shape == (2, 1, 2, 2)


@pytest.mark.parametrize(
    ("model", "size"),
    [
        (PatchGANDiscriminator(4, base_channels=4, n_layers=3), 23),
        (ESRGANDiscriminator(4, base_channels=4), 31),
    ],
)
def test_too_small_input_says_minimum(model: nn.Module, size: int) -> None:
    with pytest.raises(ValueError, match=r"needs inputs of at least \d+×\d+ px"):
        model(torch.rand(2, 4, size, 64))


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_spectral_norm_wraps_every_layer_and_drops_batch_norm(name: str) -> None:
    model = build_discriminator(name, in_bands=4, spectral_norm=True, **TINY[name])
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert layers
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.rand(2, 4, 64, 64)).shape[:2] == (2, 1)


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_without_spectral_norm_uses_batch_norm(name: str) -> None:
    model = build_discriminator(name, in_bands=4, **TINY[name])
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(parametrize.is_parametrized(m) for m in model.modules())


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_gradients_reach_every_parameter(name: str, spectral_norm: bool) -> None:
    model = build_discriminator(name, in_bands=4, spectral_norm=spectral_norm, **TINY[name])
    model(torch.rand(2, 4, 32, 32)).mean().backward()
    missing = [key for key, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached: {missing}"


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_score_pair_equals_two_forwards(name: str, spectral_norm: bool) -> None:
    """Same logits, parameter gradients and batch-norm running statistics as two calls."""
    torch.manual_seed(0)
    paired = build_discriminator(name, in_bands=4, spectral_norm=spectral_norm, **TINY[name])
    separate = copy.deepcopy(paired)
    real, fake = torch.rand(3, 4, 32, 32), torch.rand(3, 4, 32, 32) * 0.5

    real_logits, fake_logits = paired.score_pair(real, fake)
    (real_logits.square().mean() + 3 * fake_logits.mean()).backward()
    expected_real, expected_fake = separate(real), separate(fake)
    (expected_real.square().mean() + 3 * expected_fake.mean()).backward()

    torch.testing.assert_close(real_logits, expected_real)
    torch.testing.assert_close(fake_logits, expected_fake)
    assert not torch.equal(real_logits, fake_logits)
    for (key, p), q in zip(paired.named_parameters(), separate.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, key
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=key)
    for (key, a), b in zip(paired.named_buffers(), separate.buffers(), strict=True):
        torch.testing.assert_close(a, b, msg=key)


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_outputs_are_raw_logits(name: str) -> None:
    model = build_discriminator(name, in_bands=4, **TINY[name]).eval()
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(5.0)
        out = model(torch.rand(2, 4, 32, 32))
    # A trailing sigmoid would squash the constant 5 to ≈0.993.
    torch.testing.assert_close(out, torch.full_like(out, 5.0))


def test_unknown_discriminator_lists_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown discriminator 'unet'; choose one of: esrgan, patchgan, srgan"
    ):
        build_discriminator("unet", in_bands=4)


def test_discriminator_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="n_layers must be a positive integer; got 0"):
        PatchGANDiscriminator(4, n_layers=0)
