"""Global bicubic skip: the generator learns the residual between HR and bicubic upsampling."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


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
