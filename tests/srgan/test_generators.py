"""Tests for srgan.models generators and residual blocks (tiny widths, 4–8 px LR inputs)."""

from typing import Any

import pytest
import torch
from torch import nn

from srgan.models import (
    BLOCKS,
    GENERATORS,
    RRDBNet,
    SRResNet,
    StochasticSRResNet,
    build_block,
    build_generator,
)

TINY: dict[str, dict[str, Any]] = {
    "srresnet": {"channels": 8, "n_blocks": 1},
    "rrdbnet": {"channels": 8, "n_blocks": 1, "growth": 4},
    "stochastic": {"channels": 8, "n_blocks": 2, "noise_dim": 4},
}
BANDS = (1, 4, 6, 13)
SCALES = (2, 4, 8)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_all_grads(model: nn.Module) -> None:
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_srresnet_shapes_every_block(block: str, scale: int) -> None:
    for bands in BANDS:
        model = SRResNet(bands, scale, channels=8, n_blocks=1, block=block)
        out = model(torch.rand(2, bands, 5, 4))
        assert out.shape == (2, bands, 5 * scale, 4 * scale)
        assert out.dtype == torch.float32


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ["rrdbnet", "stochastic"])
def test_other_generator_shapes(name: str, scale: int) -> None:
    for bands in BANDS:
        model = build_generator(name, in_bands=bands, scale=scale, **TINY[name])
        out = model(torch.rand(2, bands, 4, 6))
        assert out.shape == (2, bands, 4 * scale, 6 * scale)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_out_bands_override(name: str) -> None:
    model = build_generator(name, in_bands=13, scale=2, out_bands=4, **TINY[name])
    assert model(torch.rand(1, 13, 4, 4)).shape == (1, 4, 8, 8)


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("scale", [1, 3, 16])
def test_bad_scale_lists_choices(name: str, scale: int) -> None:
    with pytest.raises(ValueError, match=r"scale must be one of 2, 4, 8; got"):
        build_generator(name, in_bands=4, scale=scale, **TINY[name])


def test_unknown_generator_lists_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown generator 'edsr'; choose one of: rrdbnet, srresnet, stochastic"
    ):
        build_generator("edsr", in_bands=4, scale=4)


def test_unknown_block_lists_choices() -> None:
    expected = r"unknown block 'swin'; choose one of: lka, rcab, res, rrdb, standard"
    with pytest.raises(ValueError, match=expected):
        SRResNet(4, 4, block="swin")
    with pytest.raises(ValueError, match=expected):
        build_block("swin", channels=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"large_kernel": 4}, "large_kernel must be a positive odd integer"),
        ({"small_kernel": 0}, "small_kernel must be a positive odd integer"),
        ({"channels": 0}, "channels must be a positive integer"),
        ({"out_bands": 0}, "out_bands must be a positive integer"),
    ],
)
def test_srresnet_rejects_bad_sizes(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SRResNet(4, 4, **kwargs)


def test_stochastic_rejects_wrong_noise_shape() -> None:
    model = StochasticSRResNet(4, 2, **TINY["stochastic"])
    with pytest.raises(ValueError, match=r"noise must have shape \(B, noise_dim\) = \(2, 4\)"):
        model(torch.rand(2, 4, 4, 4), noise=torch.randn(2, 5))


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_blocks_keep_shape(block: str) -> None:
    x = torch.rand(2, 16, 6, 5)
    assert build_block(block, channels=16, kernel_size=3, res_scale=0.2)(x).shape == x.shape


def test_classic_srresnet_parameter_count() -> None:
    # head 20,800 + PReLU 1; 16 blocks × 74,113; body tail 37,056; 2 upsample stages × 147,713;
    # tail 20,740. The reference SRGAN generator has ≈1.56 M.
    assert n_params(SRResNet(in_bands=4, scale=4)) == 1_559_831


def test_classic_rrdbnet_parameter_count() -> None:
    # The published ESRGAN RRDB_PSNR_x4 (3 bands) has 16,697,987 parameters.
    assert n_params(RRDBNet(in_bands=3, scale=4)) == 16_697_987


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_srresnet_gradients_reach_every_parameter(block: str) -> None:
    model = SRResNet(4, 2, channels=8, n_blocks=2, block=block)
    model(torch.rand(2, 4, 6, 6)).square().mean().backward()
    assert_all_grads(model)


@pytest.mark.parametrize("name", ["rrdbnet", "stochastic"])
def test_other_generators_gradients_reach_every_parameter(name: str) -> None:
    model = build_generator(name, in_bands=4, scale=2, **TINY[name])
    model(torch.rand(2, 4, 6, 6)).square().mean().backward()
    assert_all_grads(model)


def test_stochastic_noise_changes_output_in_train_mode() -> None:
    torch.manual_seed(0)
    model = StochasticSRResNet(4, 2, **TINY["stochastic"]).train()
    x = torch.rand(2, 4, 6, 6)
    first = model(x, noise=torch.randn(2, 4))
    second = model(x, noise=torch.randn(2, 4))
    assert (first - second).abs().max() > 1e-4
    sampled_a, sampled_b = model(x), model(x)
    assert (sampled_a - sampled_b).abs().max() > 1e-4


def test_stochastic_given_noise_is_reproducible() -> None:
    model = StochasticSRResNet(4, 2, **TINY["stochastic"]).train()
    x, z = torch.rand(1, 4, 6, 6), torch.randn(1, 4)
    torch.testing.assert_close(model(x, noise=z), model(x, noise=z), rtol=0, atol=0)


def test_stochastic_eval_without_noise_is_deterministic_zero_noise() -> None:
    model = StochasticSRResNet(4, 2, **TINY["stochastic"]).eval()
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        first, second = model(x), model(x)
        zero_noise = model(x, noise=torch.zeros(2, 4))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, zero_noise, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_construction_is_deterministic_under_seed(name: str) -> None:
    torch.manual_seed(7)
    first = build_generator(name, in_bands=4, scale=2, **TINY[name])
    torch.manual_seed(7)
    second = build_generator(name, in_bands=4, scale=2, **TINY[name])
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
