"""Global bicubic skip: the generator learns the residual between HR and bicubic upsampling.

Also bicubic upsampling itself as torch computes it (``F.interpolate(mode="bicubic",
align_corners=False)``), in polyphase form: :func:`phase_taps` and :class:`PolyphaseBicubic`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Coefficient of torch's bicubic convolution kernel (``F.interpolate(mode="bicubic")``).
CUBIC_A = -0.75


def cubic_weights(t: float) -> list[float]:
    """Weights of the four taps ``i - 1 … i + 2`` at fraction ``t`` past tap ``i``."""
    a = CUBIC_A

    def near(x: float) -> float:
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: float) -> float:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def phase_taps(scale: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(5, scale)``: output pixel ``j·scale + p`` of a bicubic upsampling along one axis is
    LR pixels ``j − 2 … j + 2`` (edges repeated) weighted by column ``p``."""
    weights = torch.zeros(5, scale, dtype=dtype)
    for p in range(scale):
        offset = (p + 0.5) / scale - 0.5  # source position relative to pixel j, in (-½, ½)
        base = math.floor(offset)
        for k, weight in enumerate(cubic_weights(offset - base)):
            weights[base + 1 + k, p] = weight
    return weights


class PolyphaseBicubic(nn.Module):
    """``F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)`` as one
    grouped 5×5 convolution on the LR grid (one output channel per band and phase) and a
    PixelShuffle: the same values to float rounding for scales 2, 4 and 8, in oneDNN's or
    cuDNN's convolution instead of torch's own interpolation kernel (see docs/benchmarks.md).

    Args:
        bands: Channels of the input.
        scale: Upscaling factor.
    """

    def __init__(self, bands: int, scale: int) -> None:
        super().__init__()
        taps = phase_taps(scale)
        kernel = torch.einsum("ip,jq->pqij", taps, taps).reshape(scale * scale, 1, 5, 5)
        self.weight: Tensor
        self.register_buffer("weight", kernel.repeat(bands, 1, 1, 1))
        self.bands, self.scale = bands, scale

    def forward(self, x: Tensor) -> Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(padded, self.weight, groups=self.bands), self.scale)


class BicubicResidual(nn.Module):
    """Wraps a generator so that ``G(x) = bicubic(x) + net(x)``.

    The network only has to model what bicubic interpolation misses (edges, texture), so short
    trainings start at the bicubic baseline instead of far below it. The final convolution of
    ``net`` is scaled down so the initial residual is small.

    Args:
        net: a generator mapping ``(B, C, h, w)`` to ``(B, C, h*scale, w*scale)``.
        scale: its upscaling factor.
    """

    def __init__(self, net: nn.Module, scale: int, init_scale: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.scale = scale
        last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
        last.weight.data.mul_(init_scale)
        if last.bias is not None:
            last.bias.data.zero_()

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.net(x, *args, **kwargs)
