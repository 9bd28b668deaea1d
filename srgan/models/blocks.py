"""Residual blocks for the SRResNet-family generators, their registry, and shared helpers.

Every block maps ``(B, C, h, w)`` float32 features to the same shape and is built by the same
call, ``BLOCKS[name](channels, kernel_size, res_scale)``, so a generator can swap blocks by name.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")

SCALES: Final[tuple[int, ...]] = (2, 4, 8)


def registry_lookup(registry: Mapping[str, T], kind: str, name: str) -> T:
    """Return ``registry[name]``, failing loudly with the valid names.

    Raises:
        ValueError: If ``name`` is not a key of ``registry``.
    """
    if name not in registry:
        choices = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {choices}")
    return registry[name]


def upsample_stages(scale: int) -> int:
    """Number of ×2 upsampling stages needed for ``scale``.

    Raises:
        ValueError: If ``scale`` is not one of 2, 4, 8.
    """
    if scale not in SCALES:
        choices = ", ".join(map(str, SCALES))
        raise ValueError(f"scale must be one of {choices}; got {scale!r}")
    return int(math.log2(scale))


def check_sizes(**sizes: int) -> None:
    """Reject non-positive layer sizes with the argument's name.

    Raises:
        ValueError: Naming the first argument that is < 1.
    """
    for name, size in sizes.items():
        if size < 1:
            raise ValueError(f"{name} must be a positive integer; got {size}")


def check_kernels(**kernels: int) -> None:
    """Reject even kernel sizes, which cannot keep ``h, w`` with symmetric padding.

    Raises:
        ValueError: Naming the first offending argument.
    """
    for name, size in kernels.items():
        if size < 1 or size % 2 == 0:
            raise ValueError(f"{name} must be a positive odd integer (e.g. 3 or 9); got {size}")


def init_weights(modules: nn.Module | Iterable[nn.Module], scale: float = 1.0) -> None:
    """Kaiming-normal conv/linear weights multiplied by ``scale``, zero biases, unit BN.

    A ``scale`` of 0.1 on the residual branches of BN-free blocks keeps every block close to the
    identity at the start, which is what lets deep EDSR/ESRGAN trunks train stably.
    """
    roots = [modules] if isinstance(modules, nn.Module) else list(modules)
    with torch.no_grad():
        for root in roots:
            for module in root.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(module.weight)
                    module.weight.mul_(scale)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)


def same_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """Stride-1 conv that keeps ``h, w`` (odd ``kernel_size``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class PixelShuffleUpsampler(nn.Sequential):
    """``log2(scale)`` stages of conv → PixelShuffle(2) → PReLU: ``(B, C, h, w) → (B, C, sh, sw)``.

    Raises:
        ValueError: If ``scale`` is not one of 2, 4, 8.
    """

    def __init__(self, channels: int, scale: int, kernel_size: int = 3) -> None:
        stages: list[nn.Module] = []
        for _ in range(upsample_stages(scale)):
            stages += [
                same_conv(channels, 4 * channels, kernel_size),
                nn.PixelShuffle(2),
                nn.PReLU(),
            ]
        super().__init__(*stages)


class StandardBlock(nn.Module):
    """SRGAN residual block: conv-BN-PReLU-conv-BN plus identity.

    ``res_scale`` is accepted for a uniform block signature but unused: batch norm already keeps
    the branch in range, as in the original SRGAN.
    """

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel_size),
            nn.BatchNorm2d(channels),
            nn.PReLU(),
            same_conv(channels, channels, kernel_size),
            nn.BatchNorm2d(channels),
        )
        init_weights(self.body)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResBlock(nn.Module):
    """EDSR residual block without BN: ``x + res_scale * conv(ReLU(conv(x)))``."""

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel_size),
            nn.ReLU(),
            same_conv(channels, channels, kernel_size),
        )
        init_weights(self.body, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class ChannelAttention(nn.Module):
    """Squeeze-excitation gate: global pool → 1×1 bottleneck → sigmoid, multiplies the input.

    The bottleneck has ``channels // reduction`` units but at least 4, so narrow test models still
    have a meaningful gate.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel attention block (RCAN): conv-ReLU-conv, channel attention, scaled skip."""

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel_size),
            nn.ReLU(),
            same_conv(channels, channels, kernel_size),
            ChannelAttention(channels),
        )
        init_weights(self.body, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class DenseBlock(nn.Module):
    """ESRGAN residual dense block: five densely connected convs, LeakyReLU(0.2), scaled skip.

    Conv ``i`` sees the input and all earlier outputs (``channels + i * growth`` channels); the
    first four emit ``growth`` channels, the fifth fuses back to ``channels``.
    """

    def __init__(
        self, channels: int, growth: int = 32, kernel_size: int = 3, res_scale: float = 0.2
    ) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.convs = nn.ModuleList(
            same_conv(channels + i * growth, growth if i < 4 else channels, kernel_size)
            for i in range(5)
        )
        self.act = nn.LeakyReLU(0.2)
        init_weights(self.convs, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for conv in self.convs[:-1]:
            features.append(self.act(conv(torch.cat(features, dim=1))))
        return x + self.res_scale * self.convs[-1](torch.cat(features, dim=1))


class RRDB(nn.Module):
    """Residual-in-residual dense block (ESRGAN): three dense blocks inside a scaled skip."""

    def __init__(
        self, channels: int, kernel_size: int = 3, res_scale: float = 0.2, growth: int = 32
    ) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            *(DenseBlock(channels, growth, kernel_size, res_scale) for _ in range(3))
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class LargeKernelAttention(nn.Module):
    """VAN large-kernel attention: depthwise 5×5 → depthwise 7×7 dilation 3 → 1×1 gates the input.

    The decomposition covers a 21×21 receptive field with a few hundred weights per channel, which
    gives long-range context without a transformer's memory cost.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.local = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.wide = nn.Conv2d(channels, channels, 7, padding=9, dilation=3, groups=channels)
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mix(self.wide(self.local(x)))


class LKABlock(nn.Module):
    """Large-kernel attention block: ``x + res_scale * conv(LKA(GELU(conv(x))))``."""

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel_size),
            nn.GELU(),
            LargeKernelAttention(channels),
            same_conv(channels, channels, kernel_size),
        )
        init_weights(self.body, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


BlockFactory = Callable[[int, int, float], nn.Module]
"""``(channels, kernel_size, res_scale) -> block``."""

#: The names of :data:`BLOCKS` (``tests/srgan/test_registries.py`` keeps the two equal).
BlockName = Literal["standard", "res", "rcab", "rrdb", "lka"]

BLOCKS: Final[dict[str, BlockFactory]] = {
    "standard": StandardBlock,
    "res": ResBlock,
    "rcab": RCAB,
    "rrdb": RRDB,
    "lka": LKABlock,
}


def build_block(
    name: str, channels: int, kernel_size: int = 3, res_scale: float = 0.2
) -> nn.Module:
    """Build the residual block registered as ``name`` (one of ``BLOCKS``).

    Raises:
        ValueError: If ``name`` is not a registered block.
    """
    return registry_lookup(BLOCKS, "block", name)(channels, kernel_size, res_scale)
