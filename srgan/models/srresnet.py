"""SRResNet: the SRGAN generator, with swappable residual blocks, and its config."""

from typing import Literal, cast

from pydantic import Field
from torch import Tensor, nn

from srgan.models.blocks import (
    BLOCKS,
    BlockName,
    PixelShuffleUpsampler,
    check_kernels,
    check_sizes,
    init_weights,
    registry_lookup,
    same_conv,
    upsample_stages,
)
from srgan.models.family import GeneratorFamilyConfig
from srgan.models.polyphase import preshuffle_prelu, shuffled_conv


class SRResNet(nn.Module):
    """SRGAN generator: head, residual trunk with global skip, PixelShuffle upsampler, tail.

    With the defaults (64 channels, 16 ``"standard"`` blocks, 9/3 kernels) this is the classic
    SRGAN generator (≈1.56 M parameters for 4 bands at ×4). ``"res"``, ``"rcab"``, ``"rrdb"`` and
    ``"lka"`` blocks drop batch norm and scale their residual branch by ``res_scale``.

    Args:
        in_bands: Number of input spectral bands.
        scale: Upscaling factor, one of 2, 4, 8.
        out_bands: Number of output bands; defaults to ``in_bands``.
        channels: Feature width of the trunk.
        n_blocks: Number of residual blocks in the trunk.
        block: Residual block name, one of ``BLOCKS`` (standard, res, rcab, rrdb, lka).
        large_kernel: Kernel size of the head and tail convs (odd).
        small_kernel: Kernel size inside the blocks and the upsampler (odd).
        res_scale: Residual branch scaling for the BN-free blocks.

    Shape:
        - Input: ``(B, in_bands, h, w)`` float32 reflectance, roughly in [0, 1].
        - Output: ``(B, out_bands, h * scale, w * scale)`` float32, same units, unbounded.

    Raises:
        ValueError: If ``scale``, ``block`` or a kernel size is invalid, or a size is < 1.

    Example::

        >>> import torch
        >>> g = SRResNet(in_bands=4, scale=4, channels=16, n_blocks=2)
        >>> g(torch.rand(1, 4, 8, 8)).shape
        torch.Size([1, 4, 32, 32])
    """

    def __init__(
        self,
        in_bands: int,
        scale: int,
        out_bands: int | None = None,
        channels: int = 64,
        n_blocks: int = 16,
        block: BlockName = "standard",
        large_kernel: int = 9,
        small_kernel: int = 3,
        res_scale: float = 0.2,
    ) -> None:
        super().__init__()
        upsample_stages(scale)
        make_block = registry_lookup(BLOCKS, "block", block)
        check_kernels(large_kernel=large_kernel, small_kernel=small_kernel)
        out_bands = in_bands if out_bands is None else out_bands
        check_sizes(in_bands=in_bands, out_bands=out_bands, channels=channels, n_blocks=n_blocks)
        self.in_bands = in_bands
        self.out_bands = out_bands
        self.scale = scale

        self.head = nn.Sequential(same_conv(in_bands, channels, large_kernel), nn.PReLU())
        self.body = nn.Sequential(
            *(make_block(channels, small_kernel, res_scale) for _ in range(n_blocks))
        )
        body_tail: list[nn.Module] = [same_conv(channels, channels, small_kernel)]
        if block == "standard":
            body_tail.append(nn.BatchNorm2d(channels))
        self.body_tail = nn.Sequential(*body_tail)
        self.upsampler = PixelShuffleUpsampler(channels, scale, small_kernel)
        self.tail = same_conv(channels, out_bands, large_kernel)
        init_weights([self.head, self.body_tail, self.upsampler, self.tail])
        #: Compute the output conv in its polyphase form (exact; ``False`` only to compare).
        self.polyphase_tail = True

    def forward(self, x: Tensor) -> Tensor:
        """Super-resolve ``x`` of shape ``(B, in_bands, h, w)`` to ``(B, out_bands, sh, sw)``."""
        features = self.head(x)
        features = features + self.body_tail(self.body(features))
        if not self.polyphase_tail:
            return self.tail(self.upsampler(features))
        # the last PixelShuffle → PReLU → tail, as tail's polyphase form on the pre-shuffle
        # grid (srgan/models/polyphase.py): the same map, several times faster
        stages = list(self.upsampler)  # ... → conv → PixelShuffle(2) → PReLU
        z = features
        for stage in stages[:-2]:
            z = stage(z)
        return shuffled_conv(preshuffle_prelu(z, cast("nn.PReLU", stages[-1]), 2), self.tail, 2)


class SRResNetConfig(GeneratorFamilyConfig):
    """``generator`` section of the ``srresnet`` family: the arguments of :class:`SRResNet`."""

    name: Literal["srresnet"] = "srresnet"
    block: BlockName = "standard"
    channels: int = Field(64, ge=1)
    n_blocks: int = Field(16, ge=1)
    large_kernel: int = Field(9, ge=1)
    small_kernel: int = Field(3, ge=1)
    res_scale: float = Field(0.2, gt=0)
