"""StochasticSRResNet: an SRResNet whose residual blocks are modulated by a noise vector, and its
config."""

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from srgan.models.blocks import (
    PixelShuffleUpsampler,
    check_kernels,
    check_sizes,
    init_weights,
    same_conv,
    upsample_stages,
)
from srgan.models.family import GeneratorFamilyConfig


class FiLMBlock(nn.Module):
    """BN-free residual block with feature-wise modulation after its first conv.

    ``x + res_scale * conv(PReLU(conv(x) * (1 + gamma) + beta))``; ``gamma`` and ``beta`` are
    per-sample, per-channel and come from the generator's noise mapping.
    """

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = same_conv(channels, channels, kernel_size)
        self.act = nn.PReLU()
        self.conv2 = same_conv(channels, channels, kernel_size)
        init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """Apply the block to ``x`` ``(B, C, h, w)`` with ``gamma, beta`` of shape ``(B, C)``."""
        out = self.conv1(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return x + self.res_scale * self.conv2(self.act(out))


class StochasticSRResNet(nn.Module):
    """SRResNet-style generator that draws a different plausible texture for each noise vector.

    A noise vector ``z ~ N(0, 1)`` of size ``noise_dim`` goes through a small MLP to a FiLM
    scale/shift for every channel of every block, so one LR input maps to a family of HR
    outputs. Noise handling in :meth:`forward`:

    - ``noise`` given: used as is (reproducible sampling, interpolation between textures).
    - ``noise=None`` in ``train()`` mode: sampled with ``torch.randn`` on the input's device.
    - ``noise=None`` in ``eval()`` mode: zeros, the mean of the prior, so validation metrics and
      inference are deterministic.

    Args:
        in_bands: Number of input spectral bands.
        scale: Upscaling factor, one of 2, 4, 8.
        out_bands: Number of output bands; defaults to ``in_bands``.
        channels: Feature width of the trunk.
        n_blocks: Number of modulated residual blocks.
        noise_dim: Size of the noise vector ``z``.
        large_kernel: Kernel size of the head and tail convs (odd).
        small_kernel: Kernel size inside the blocks and the upsampler (odd).
        res_scale: Residual branch scaling.

    Shape:
        - Input: ``(B, in_bands, h, w)`` float32 reflectance; ``noise`` ``(B, noise_dim)``.
        - Output: ``(B, out_bands, h * scale, w * scale)`` float32, same units, unbounded.

    Raises:
        ValueError: If ``scale`` or a kernel size is invalid, or a size is < 1.

    Example::

        >>> import torch
        >>> g = StochasticSRResNet(in_bands=4, scale=2, channels=16, n_blocks=2, noise_dim=8)
        >>> g(torch.rand(1, 4, 8, 8), noise=torch.randn(1, 8)).shape
        torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        in_bands: int,
        scale: int,
        out_bands: int | None = None,
        channels: int = 64,
        n_blocks: int = 16,
        noise_dim: int = 64,
        large_kernel: int = 9,
        small_kernel: int = 3,
        res_scale: float = 0.2,
    ) -> None:
        super().__init__()
        upsample_stages(scale)
        check_kernels(large_kernel=large_kernel, small_kernel=small_kernel)
        out_bands = in_bands if out_bands is None else out_bands
        check_sizes(
            in_bands=in_bands,
            out_bands=out_bands,
            channels=channels,
            n_blocks=n_blocks,
            noise_dim=noise_dim,
        )
        self.in_bands = in_bands
        self.out_bands = out_bands
        self.scale = scale
        self.channels = channels
        self.n_blocks = n_blocks
        self.noise_dim = noise_dim

        self.mapping = nn.Sequential(
            nn.Linear(noise_dim, channels),
            nn.SiLU(),
            nn.Linear(channels, n_blocks * 2 * channels),
        )
        self.head = nn.Sequential(same_conv(in_bands, channels, large_kernel), nn.PReLU())
        self.body = nn.ModuleList(
            FiLMBlock(channels, small_kernel, res_scale) for _ in range(n_blocks)
        )
        self.body_tail = same_conv(channels, channels, small_kernel)
        self.upsampler = PixelShuffleUpsampler(channels, scale, small_kernel)
        self.tail = same_conv(channels, out_bands, large_kernel)
        init_weights([self.mapping, self.head, self.body_tail, self.upsampler, self.tail])

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """Super-resolve ``x`` ``(B, in_bands, h, w)`` under ``noise`` ``(B, noise_dim)``.

        Raises:
            ValueError: If ``noise`` is given with a shape other than ``(B, noise_dim)``.
        """
        batch = x.shape[0]
        if noise is None:
            shape = (batch, self.noise_dim)
            if self.training:
                noise = torch.randn(shape, device=x.device, dtype=x.dtype)
            else:
                noise = torch.zeros(shape, device=x.device, dtype=x.dtype)
        elif noise.shape != (batch, self.noise_dim):
            raise ValueError(
                f"noise must have shape (B, noise_dim) = ({batch}, {self.noise_dim}); "
                f"got {tuple(noise.shape)}"
            )
        films = self.mapping(noise).view(batch, self.n_blocks, 2, self.channels)

        features = self.head(x)
        residual = features
        for i, block in enumerate(self.body):
            residual = block(residual, films[:, i, 0], films[:, i, 1])
        features = features + self.body_tail(residual)
        return self.tail(self.upsampler(features))


class StochasticConfig(GeneratorFamilyConfig):
    """``generator`` section of the ``stochastic`` family: the arguments of
    :class:`StochasticSRResNet`."""

    name: Literal["stochastic"] = "stochastic"
    channels: int = Field(64, ge=1)
    n_blocks: int = Field(16, ge=1)
    noise_dim: int = Field(64, ge=1)
    large_kernel: int = Field(9, ge=1)
    small_kernel: int = Field(3, ge=1)
    res_scale: float = Field(0.2, gt=0)
