"""Exact reformulations of slow generator layers, for inference only.

A trained generator is rewritten once, after its weights are loaded, into a network that
computes the same function (up to float rounding) with fewer passes over memory and with
convolutions shaped the way oneDNN runs fast:

- **The output convolution after the last PixelShuffle** (the 10 m preset's ``64 → 4`` 9×9
  conv at the HR grid) has 4 output channels, a quarter of a vector register, so it runs far
  below the machine's convolution peak. Its polyphase form computes the same sums on the
  pre-shuffle grid: ``conv(shuffle(z)) = shuffle(conv'(z))`` with ``conv'`` a
  ``4·C → 4·out`` convolution of kernel ``2·⌈r/2⌉+1`` (5×5 for 9×9). The 64-channel HR map
  is never materialised, and the PReLU between (element-wise) moves before the shuffle.
- **Residual channel attention** (RCAB): ``x + s·(y·gate(y))`` becomes one ``addcmul``
  instead of three element-wise passes, and the gate's 1×1 convolutions on a 1×1 map become
  matrix-vector products (torch sends a 1×1 conv on a 1×1 map to its slow reference kernel).
- **Scaled residuals** (EDSR blocks): ``x + s·y`` becomes one ``add(alpha=s)``; ReLUs after a
  convolution run in place.

Other generator families pass through unchanged. ``tests/srgan/test_inference_graph.py``
checks every rewrite against the original network.

Example::

    fast = prepare_for_inference(generator)            # float32, NHWC
    torch.testing.assert_close(fast(x), generator(x))  # same function
"""

from __future__ import annotations

import copy
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srgan.models.bicubic_skip import BicubicResidual
from srgan.models.blocks import RCAB, ChannelAttention, ResBlock
from srgan.models.srresnet import SRResNet


def polyphase_weight(weight: Tensor, factor: int = 2) -> Tensor:
    """Weights of the conv on the pre-shuffle grid equal to ``weight`` after a PixelShuffle.

    For an HR output pixel of phase ``(p, q)`` at pre-shuffle position ``(y, x)``, tap
    ``(ky, kx)`` of the original kernel (offsets ``-r…r``) reads HR pixel
    ``(factor·y + p + ky, …)``, i.e. input phase ``(p + ky) mod factor`` at pre-shuffle
    offset ``⌊(p + ky) / factor⌋``. Each (output phase, input phase) pair gets those taps;
    the rest of the new kernel is zero.

    Args:
        weight: ``(out, in, k, k)`` kernel of an odd-sized, stride-1, ``k // 2``-padded conv.
        factor: PixelShuffle factor in front of that conv.

    Returns:
        ``(out·f², in·f², k', k')`` kernel with ``k' = 2·⌈r/f⌉ + 1`` (``r = k // 2``), to be
        used with padding ``k' // 2`` and followed by ``pixel_shuffle(·, factor)``; channel
        ``o·f² + p·f + q`` is output ``o`` at phase ``(p, q)``, the order PixelShuffle reads.

    Raises:
        ValueError: The kernel is not square and odd.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"polyphase_weight needs a square odd kernel, got {kh}×{kw}")
    f, r = factor, kh // 2
    half = -(-r // f)  # ⌈r / f⌉
    size = 2 * half + 1
    new = weight.new_zeros(out_ch, f, f, in_ch, f, f, size, size)
    for p in range(f):
        for ky in range(-r, r + 1):
            qy, dy = (p + ky) % f, (p + ky) // f
            for q in range(f):
                for kx in range(-r, r + 1):
                    qx, dx = (q + kx) % f, (q + kx) // f
                    new[:, p, q, :, qy, qx, dy + half, dx + half] = weight[:, :, ky + r, kx + r]
    return new.reshape(out_ch * f * f, in_ch * f * f, size, size)


class ShuffledConv(nn.Module):
    """``conv(pixel_shuffle(z, f))`` computed as ``pixel_shuffle(conv'(z), f)`` (polyphase).

    Args:
        conv: The stride-1, same-padded, odd-kernel conv that follows the PixelShuffle.
        factor: The PixelShuffle factor.

    Shape:
        ``(B, C·f², h, w) → (B, out, h·f, w·f)``, as ``conv`` on the shuffled input.
    """

    def __init__(self, conv: nn.Conv2d, factor: int) -> None:
        super().__init__()
        weight = polyphase_weight(conv.weight.detach(), factor)
        self.conv = nn.Conv2d(
            weight.shape[1], weight.shape[0], weight.shape[-1], padding=weight.shape[-1] // 2
        ).to(weight.device, weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            bias = conv.bias
            assert self.conv.bias is not None
            if bias is None:
                self.conv.bias.zero_()
            else:
                self.conv.bias.copy_(bias.detach().repeat_interleave(factor * factor))
        self.factor = factor

    def forward(self, z: Tensor) -> Tensor:
        return F.pixel_shuffle(self.conv(z), self.factor)


def _preshuffle_prelu(prelu: nn.PReLU, factor: int) -> nn.PReLU:
    """The PReLU that, applied before ``PixelShuffle(factor)``, equals ``prelu`` after it."""
    n = prelu.num_parameters
    moved = nn.PReLU(1 if n == 1 else n * factor * factor)
    with torch.no_grad():
        weight = prelu.weight.detach()
        moved.weight.copy_(weight if n == 1 else weight.repeat_interleave(factor * factor))
    return moved.to(prelu.weight.device, prelu.weight.dtype)


class FastChannelAttention(nn.Module):
    """:class:`~srgan.models.blocks.ChannelAttention`'s gate as matrix-vector products.

    Returns the gate ``(B, C, 1, 1)`` times ``scale``, not the gated input.
    """

    def __init__(self, attention: ChannelAttention, scale: float) -> None:
        super().__init__()
        squeeze, expand = cast("nn.Conv2d", attention.gate[1]), cast("nn.Conv2d", attention.gate[3])
        self.squeeze = nn.Linear(squeeze.in_channels, squeeze.out_channels)
        self.expand = nn.Linear(expand.in_channels, expand.out_channels)
        for linear, conv in ((self.squeeze, squeeze), (self.expand, expand)):
            with torch.no_grad():
                linear.weight.copy_(conv.weight.detach().flatten(1))
                assert linear.bias is not None and conv.bias is not None
                linear.bias.copy_(conv.bias.detach())
            linear.to(conv.weight.device, conv.weight.dtype)
        self.scale = scale

    def forward(self, y: Tensor) -> Tensor:
        pooled = y.mean((2, 3))
        gate = torch.sigmoid(self.expand(torch.relu_(self.squeeze(pooled))))
        return (gate * self.scale)[:, :, None, None]


class FastRCAB(nn.Module):
    """:class:`~srgan.models.blocks.RCAB` with one ``addcmul`` for gate, scale and skip."""

    def __init__(self, block: RCAB) -> None:
        super().__init__()
        self.conv1, self.conv2 = block.body[0], block.body[2]
        self.gate = FastChannelAttention(cast("ChannelAttention", block.body[3]), block.res_scale)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(torch.relu_(self.conv1(x)))
        return torch.addcmul(x, y, self.gate(y))


class FastResBlock(nn.Module):
    """:class:`~srgan.models.blocks.ResBlock` with the scaled skip as one ``add``."""

    def __init__(self, block: ResBlock) -> None:
        super().__init__()
        self.conv1, self.conv2 = block.body[0], block.body[2]
        self.res_scale = block.res_scale

    def forward(self, x: Tensor) -> Tensor:
        return torch.add(x, self.conv2(torch.relu_(self.conv1(x))), alpha=self.res_scale)


_BLOCK_REWRITES: dict[type[nn.Module], type[nn.Module]] = {RCAB: FastRCAB, ResBlock: FastResBlock}


def _rewrite_srresnet(net: SRResNet) -> None:
    net.body = nn.Sequential(
        *(_BLOCK_REWRITES[type(b)](b) if type(b) in _BLOCK_REWRITES else b for b in net.body)
    )
    stages = list(net.upsampler)
    if (
        len(stages) >= 3
        and isinstance(stages[-2], nn.PixelShuffle)
        and isinstance(stages[-1], nn.PReLU)
        and isinstance(net.tail, nn.Conv2d)
        and net.tail.stride == (1, 1)
        and net.tail.dilation == (1, 1)
        and net.tail.groups == 1
        and net.tail.padding == (net.tail.kernel_size[0] // 2,) * 2
    ):
        factor = stages[-2].upscale_factor
        prelu = _preshuffle_prelu(stages[-1], factor)
        net.upsampler = nn.Sequential(*stages[:-2], prelu)  # type: ignore[assignment]
        net.tail = ShuffledConv(net.tail, factor)  # type: ignore[assignment]


def prepare_for_inference(
    generator: nn.Module, dtype: torch.dtype = torch.float32, channels_last: bool = True
) -> nn.Module:
    """A rewritten copy of ``generator`` for inference (the original is left untouched).

    Args:
        generator: A trained generator (an :class:`~srgan.models.srresnet.SRResNet`, possibly
            inside a :class:`~srgan.models.bicubic_skip.BicubicResidual`, is rewritten; other
            families are only copied).
        dtype: Weight type of the copy (``torch.bfloat16`` halves memory traffic and uses the
            CPU's or GPU's bf16 matrix units; inputs must then be of that type too).
        channels_last: Store weights NHWC (oneDNN's and cuDNN's fast layout).

    Returns:
        The copy, in eval mode, without gradients, computing the same function.
    """
    fast = copy.deepcopy(generator).eval().requires_grad_(False)
    net = fast.net if isinstance(fast, BicubicResidual) else fast
    if isinstance(net, SRResNet):
        _rewrite_srresnet(net)
    fast = fast.to(dtype=dtype).requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return fast
