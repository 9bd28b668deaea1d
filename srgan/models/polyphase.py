"""A convolution after a PixelShuffle, computed on the pre-shuffle grid (exact, differentiable).

The generators' output convolution (``64 → bands``, 9×9 for SRGAN) runs at the HR grid, after
the last PixelShuffle, with as many output channels as bands: four outputs fill a quarter of a
vector register, so oneDNN runs it at a fraction of the machine's convolution peak (in training
its forward and backward took a quarter of a pretraining step). Its polyphase form is the same
linear map: for an HR output pixel of phase ``(p, q)`` at pre-shuffle position ``(y, x)``, tap
``(ky, kx)`` (offsets ``-r…r``) reads HR pixel ``(f·y + p + ky, …)``, i.e. input phase
``(p + ky) mod f`` at pre-shuffle offset ``⌊(p + ky) / f⌋``. So
``conv(shuffle(z)) = shuffle(conv'(z))`` with ``conv'`` a ``C·f² → out·f²`` convolution of
kernel ``2·⌈r/f⌉ + 1`` whose weights are the original ones rearranged (and zeros). The HR
feature map is never built, and the weights stay the original parameter (gradients flow back
through the rearrangement), so checkpoints and optimizers see the same parameters.

Example::

    y = shuffled_conv(z, tail, 2)   # == tail(F.pixel_shuffle(z, 2)), up to float rounding
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@functools.lru_cache(maxsize=16)
def polyphase_index(out_ch: int, in_ch: int, kernel: int, factor: int) -> Tensor:
    """For each element of the polyphase kernel, the flat index of the original weight it
    copies, or ``out_ch·in_ch·kernel²`` (an appended zero) where it has no tap.

    Raises:
        ValueError: ``kernel`` is even.
    """
    if kernel % 2 == 0:
        raise ValueError(f"the polyphase form needs an odd kernel, got {kernel}")
    f, r = factor, kernel // 2
    half = -(-r // f)  # ⌈r / f⌉
    size = 2 * half + 1
    zero = out_ch * in_ch * kernel * kernel
    index = torch.full((out_ch, f, f, in_ch, f, f, size, size), zero, dtype=torch.long)
    original = torch.arange(zero).reshape(out_ch, in_ch, kernel, kernel)
    for p in range(f):
        for ky in range(-r, r + 1):
            qy, dy = (p + ky) % f, (p + ky) // f
            for q in range(f):
                for kx in range(-r, r + 1):
                    qx, dx = (q + kx) % f, (q + kx) // f
                    index[:, p, q, :, qy, qx, dy + half, dx + half] = original[:, :, ky + r, kx + r]
    return index.reshape(out_ch * f * f, in_ch * f * f, size, size)


def polyphase_weight(weight: Tensor, factor: int) -> Tensor:
    """The pre-shuffle kernel equal to ``weight`` after a ``PixelShuffle(factor)``.

    Args:
        weight: ``(out, in, k, k)`` kernel (odd ``k``) of a stride-1, ``k // 2``-padded conv.
        factor: The PixelShuffle factor in front of that conv.

    Returns:
        ``(out·f², in·f², k', k')`` with ``k' = 2·⌈(k // 2) / f⌉ + 1``, to be used with padding
        ``k' // 2`` and followed by ``pixel_shuffle(·, factor)``; channel ``o·f² + p·f + q`` is
        output ``o`` at phase ``(p, q)``. Differentiable in ``weight``.

    Raises:
        ValueError: The kernel is not square and odd.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if kh != kw:
        raise ValueError(f"the polyphase form needs a square odd kernel, got {kh}×{kw}")
    index = polyphase_index(out_ch, in_ch, kh, factor).to(weight.device)
    flat = torch.cat([weight.reshape(-1), weight.new_zeros(1)])
    return flat[index]


def shuffled_conv(z: Tensor, conv: nn.Conv2d, factor: int) -> Tensor:
    """``conv(pixel_shuffle(z, factor))`` computed as ``pixel_shuffle(conv'(z), factor)``.

    Args:
        z: ``(B, C·f², h, w)`` pre-shuffle features.
        conv: Stride-1, ``k // 2``-padded, odd-kernel, ungrouped conv on ``C`` channels.
        factor: The PixelShuffle factor.

    Returns:
        ``(B, out, h·f, w·f)``, as ``conv`` on the shuffled ``z``.
    """
    weight = polyphase_weight(conv.weight, factor)
    if z.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
    bias = None if conv.bias is None else conv.bias.repeat_interleave(factor * factor)
    return F.pixel_shuffle(F.conv2d(z, weight, bias, padding=weight.shape[-1] // 2), factor)


def is_same_conv(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain odd-kernel, stride-1, same-padded conv (polyphase-able)."""
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size[0] == conv.kernel_size[1]
        and conv.kernel_size[0] % 2 == 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding == (conv.kernel_size[0] // 2,) * 2
        and conv.padding_mode == "zeros"
    )


def preshuffle_prelu(x: Tensor, prelu: nn.PReLU, factor: int) -> Tensor:
    """``prelu`` applied before a ``PixelShuffle(factor)`` as it would be after it."""
    weight: Tensor = prelu.weight
    if weight.numel() > 1:  # one slope per output channel: each covers f² input channels
        weight = weight.repeat_interleave(factor * factor)
    return F.prelu(x, weight)
