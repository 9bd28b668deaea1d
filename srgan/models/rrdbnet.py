"""RRDBNet: the ESRGAN generator (residual-in-residual dense blocks, no batch norm), and its
config."""

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from srgan.models.blocks import RRDB, check_sizes, init_weights, same_conv, upsample_stages
from srgan.models.family import GeneratorFamilyConfig


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, RRDB trunk with global skip, nearest-upsample + conv stages.

    Nearest-neighbour upsampling followed by a conv avoids the checkerboard artefacts that
    sub-pixel convolution can leave in flat areas (water, fields). With 64 channels, 23 blocks,
    growth 32 and 3 bands this is the published ESRGAN model (≈16.7 M parameters).

    Args:
        in_bands: Number of input spectral bands.
        scale: Upscaling factor, one of 2, 4, 8.
        out_bands: Number of output bands; defaults to ``in_bands``.
        channels: Feature width of the trunk.
        n_blocks: Number of RRDBs in the trunk.
        growth: Channels added by each conv inside a dense block.

    Shape:
        - Input: ``(B, in_bands, h, w)`` float32 reflectance, roughly in [0, 1].
        - Output: ``(B, out_bands, h * scale, w * scale)`` float32, same units, unbounded.

    Raises:
        ValueError: If ``scale`` is not 2, 4 or 8, or a size is < 1.

    Example::

        >>> import torch
        >>> g = RRDBNet(in_bands=4, scale=2, channels=16, n_blocks=1, growth=8)
        >>> g(torch.rand(1, 4, 8, 8)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        in_bands: int,
        scale: int,
        out_bands: int | None = None,
        channels: int = 64,
        n_blocks: int = 23,
        growth: int = 32,
    ) -> None:
        super().__init__()
        stages = upsample_stages(scale)
        out_bands = in_bands if out_bands is None else out_bands
        check_sizes(
            in_bands=in_bands,
            out_bands=out_bands,
            channels=channels,
            n_blocks=n_blocks,
            growth=growth,
        )
        self.in_bands = in_bands
        self.out_bands = out_bands
        self.scale = scale

        self.conv_first = same_conv(in_bands, channels, 3)
        self.trunk = nn.Sequential(
            *(RRDB(channels, kernel_size=3, res_scale=0.2, growth=growth) for _ in range(n_blocks))
        )
        self.trunk_conv = same_conv(channels, channels, 3)
        self.up_convs = nn.ModuleList(same_conv(channels, channels, 3) for _ in range(stages))
        self.conv_hr = same_conv(channels, channels, 3)
        self.conv_last = same_conv(channels, out_bands, 3)
        self.act = nn.LeakyReLU(0.2)
        init_weights(
            [self.conv_first, self.trunk_conv, self.up_convs, self.conv_hr, self.conv_last]
        )

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in_bands, h, w)`` to ``(B, out_bands, sh, sw)``."""
        features = self.conv_first(x)
        features = features + self.trunk_conv(self.trunk(features))
        for conv in self.up_convs:
            features = self.act(conv(F.interpolate(features, scale_factor=2, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(features)))


class RRDBNetConfig(GeneratorFamilyConfig):
    """``generator`` section of the ``rrdbnet`` family: the arguments of :class:`RRDBNet`."""

    name: Literal["rrdbnet"] = "rrdbnet"
    channels: int = Field(64, ge=1)
    n_blocks: int = Field(23, ge=1)
    growth: int = Field(32, ge=1)
