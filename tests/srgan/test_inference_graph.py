"""The polyphase output conv and the inference rewrites compute the trained generator's function.

Broken by hand once each: the phase offset in ``polyphase_index`` taken as ``(p - ky) // f``
fails ``test_polyphase_conv_equals_conv_after_pixel_shuffle``, the training-equivalence cases
and every SRResNet case below; ``torch.addcmul(x, y, gate)`` without the residual scale fails
the ``rcab`` cases.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srgan.inference_graph import ShuffledConv, prepare_for_inference
from srgan.models.bicubic_skip import BicubicResidual
from srgan.models.blocks import BLOCKS
from srgan.models.polyphase import polyphase_weight, shuffled_conv
from srgan.models.srresnet import SRResNet


def _perturbed(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere: initialisation zeroes some layers (the bicubic skip's tail),
    and a zero layer would hide a wrong rewrite."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return module.eval()


@pytest.mark.parametrize("kernel", [3, 5, 7, 9])
@pytest.mark.parametrize("factor", [2, 3])
def test_polyphase_conv_equals_conv_after_pixel_shuffle(kernel, factor):
    torch.manual_seed(kernel * factor)
    conv = nn.Conv2d(6, 3, kernel, padding=kernel // 2)
    z = torch.randn(2, 6 * factor * factor, 7, 5)
    expected = conv(F.pixel_shuffle(z, factor))
    torch.testing.assert_close(ShuffledConv(conv, factor)(z), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shuffled_conv(z, conv, factor), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("scale", "large_kernel"), [(4, 9), (2, 3), (8, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_training_through_the_polyphase_tail_gives_the_same_outputs_and_gradients(
    scale, large_kernel, channels_last
):
    """Training computes the output conv in polyphase form on the same parameters."""
    torch.manual_seed(3)
    net = _perturbed(SRResNet(4, scale, channels=8, n_blocks=1, large_kernel=large_kernel)).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.rand(2, 4, 10, 9).contiguous(memory_format=fmt)
    target = torch.rand(2, 4, 10 * scale, 9 * scale)
    results = []
    for polyphase in (False, True):
        net.zero_grad()
        net.polyphase_tail = polyphase
        out = net(x)
        (out - target).abs().mean().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
    (direct, direct_grads), (poly, poly_grads) = results
    torch.testing.assert_close(poly, direct, rtol=1e-5, atol=1e-5)
    for name, grad in direct_grads.items():
        torch.testing.assert_close(poly_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_polyphase_kernel_is_as_small_as_the_taps_allow():
    assert polyphase_weight(torch.zeros(4, 64, 9, 9), 2).shape == (16, 256, 5, 5)
    assert polyphase_weight(torch.zeros(4, 64, 3, 3), 2).shape == (16, 256, 3, 3)
    with pytest.raises(ValueError, match="odd kernel"):
        polyphase_weight(torch.zeros(4, 64, 4, 4), 2)


@pytest.mark.parametrize("block", sorted(BLOCKS))
@pytest.mark.parametrize(("scale", "large_kernel"), [(4, 9), (2, 3), (8, 5)])
@pytest.mark.parametrize("bicubic_skip", [True, False])
def test_rewritten_srresnet_computes_the_same_function(block, scale, large_kernel, bicubic_skip):
    torch.manual_seed(1)
    net = SRResNet(4, scale, channels=16, n_blocks=2, block=block, large_kernel=large_kernel)
    model = _perturbed(BicubicResidual(net, scale) if bicubic_skip else net)
    x = torch.rand(2, 4, 12, 10)
    net.polyphase_tail = False  # the reference: the output conv at the HR grid, as written
    with torch.inference_mode():
        expected = model(x)
        fast = prepare_for_inference(model)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert isinstance(fast.net.tail, ShuffledConv)  # the slow output conv is gone


def test_activations_are_fused_into_the_convolutions_before_them(monkeypatch):
    """Every ReLU and one-slope PReLU of the 10 m preset's layout runs inside the convolution
    before it (none is left as a layer of its own); fused on the CPU or run after the
    convolution without oneDNN's fused kernel, the result is the same.

    Broken by hand: the slope left out of the fused call (a ReLU) fails the comparison."""
    import srgan.inference_graph as graph

    torch.manual_seed(4)
    net = _perturbed(SRResNet(4, 4, channels=16, n_blocks=2, block="rcab", large_kernel=9))
    with torch.no_grad():  # slopes far from 0 and 1, so that a wrong one shows
        for prelu in (m for m in net.modules() if isinstance(m, nn.PReLU)):
            prelu.weight.fill_(0.3)
    x = torch.rand(2, 4, 11, 13)
    with torch.inference_mode():
        expected = net(x)
        fast = prepare_for_inference(net)
        assert not any(isinstance(m, nn.PReLU | nn.ReLU) for m in fast.modules())
        fused = [m for m in fast.modules() if isinstance(m, graph.ConvActivation)]
        assert sorted(m.slope for m in fused) == [0.0, 0.0] + [pytest.approx(0.3)] * 3
        torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-5)
        if graph._POINTWISE_CONV is not None:
            monkeypatch.setattr(graph, "_POINTWISE_CONV", None)  # a device without the kernel
            torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("slope", [0.0, 0.25])
@pytest.mark.parametrize("bias", [True, False])
def test_a_fused_convolution_equals_conv_then_activation(slope, bias):
    torch.manual_seed(5)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=bias).eval()
    x = torch.randn(2, 6, 9, 7).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        from srgan.inference_graph import ConvActivation

        got = ConvActivation(conv, slope)(x)
        torch.testing.assert_close(got, F.leaky_relu(conv(x), slope), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="zero-padded"):
        ConvActivation(nn.Conv2d(6, 5, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_polyphase_bicubic_equals_torchs_bicubic(scale, channels_last):
    """Edges included (torch repeats the edge pixels; so does the padding).

    Broken by hand: the phase offset ``(p + 1.5) / scale - 0.5`` fails every case."""
    from srgan.models.bicubic_skip import PolyphaseBicubic

    torch.manual_seed(scale)
    x = 5000 * torch.rand(2, 3, 7, 10)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    got = PolyphaseBicubic(3, scale)(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=5e-3)


def test_per_channel_prelu_moves_before_the_shuffle():
    torch.manual_seed(2)
    net = SRResNet(3, 4, channels=8, n_blocks=1, block="rcab")
    net.upsampler[-1] = nn.PReLU(8)
    _perturbed(net)
    x = torch.rand(1, 3, 9, 9)
    with torch.inference_mode():
        fast = prepare_for_inference(net)
        polyphase = net(x)
        net.polyphase_tail = False
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(polyphase, net(x), rtol=1e-4, atol=1e-5)


def test_the_trained_network_is_left_untouched():
    net = _perturbed(SRResNet(4, 4, channels=8, n_blocks=1, block="rcab"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prepare_for_inference(net, torch.bfloat16)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(net.tail, nn.Conv2d) and net.tail.weight.dtype == torch.float32


def test_bfloat16_copy_stays_close_to_float32():
    net = _perturbed(SRResNet(4, 4, channels=16, n_blocks=2, block="rcab"))
    x = torch.rand(1, 4, 16, 16)
    fast = prepare_for_inference(net, torch.bfloat16)
    assert {p.dtype for p in fast.parameters()} == {torch.bfloat16}
    with torch.inference_mode():
        out = fast(x)
        reference = net(x)
    # 8 mantissa bits: about 0.4 % per op, a few ops deep
    assert (out - reference).abs().mean() < 0.02 * reference.abs().mean()


def test_other_families_pass_through_unchanged():
    from srgan.models.rrdbnet import RRDBNet

    net = _perturbed(RRDBNet(4, 4, channels=8, n_blocks=1, growth=4))
    x = torch.rand(1, 4, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(prepare_for_inference(net)(x), net(x))
