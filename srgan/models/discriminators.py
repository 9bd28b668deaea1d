"""Discriminators: SRGAN (global), PatchGAN (per-patch) and ESRGAN VGG-style (global).

All return raw logits (no sigmoid) so the loss module can choose BCE-with-logits, hinge or
Wasserstein. With ``spectral_norm=True`` every conv and linear layer is wrapped in
:func:`torch.nn.utils.parametrizations.spectral_norm` and batch norm is dropped: the two fight
over the layer's scale, and per-batch statistics leak information between real and fake samples.
Each family's config class (its ``discriminator`` section) follows the network it describes.
"""

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from srgan.models.blocks import check_sizes
from srgan.models.family import DiscriminatorFamilyConfig


def _wrap(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return _spectral_norm(layer) if spectral_norm else layer


def _conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    *,
    batch_norm: bool,
    spectral_norm: bool,
) -> list[nn.Module]:
    """Conv (+BN unless spectral norm) + LeakyReLU(0.2); padding 1 halves h, w at stride 2."""
    use_bn = batch_norm and not spectral_norm
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=1, bias=not use_bn)
    layers = [_wrap(conv, spectral_norm)]
    if use_bn:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2))
    return layers


class Discriminator(nn.Module):
    """Base of the discriminators: :meth:`score_pair` scores a real and a fake batch."""

    def score_pair(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Logits of ``real`` and of ``fake``, each batch normalised on its own statistics.

        Equal to ``(self(real), self(fake))`` in that order, batch-norm running statistics
        included; subclasses may share work between the two batches where that changes nothing.
        """
        return self(real), self(fake)


class _PooledHeadDiscriminator(Discriminator):
    """A conv stack (``features``), an adaptive ``pool`` and a dense ``classifier`` head."""

    features: nn.Sequential
    pool: nn.AdaptiveAvgPool2d
    classifier: nn.Sequential
    #: Spectral norm runs a power iteration per call, so one head call would change the result.
    share_head: bool

    def forward(self, x: Tensor) -> Tensor:
        """Score ``x`` ``(B, in_bands, H, W)``; returns ``(B, 1)`` logits (high = real)."""
        return self.classifier(self.pool(self.features(x)))

    def score_pair(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Conv stack per batch (its batch norm must not mix them), dense head once on both.

        The head has no batch norm, so one call on the concatenation computes the same logits;
        its backward then writes the first dense layer's weight gradient (``features × 1024``,
        most of the parameters) once instead of twice plus an addition. With spectral norm each
        call advances the power iteration, so there the two batches take two calls as usual.
        """
        if not self.share_head:
            return super().score_pair(real, fake)
        pooled = torch.cat([self.pool(self.features(real)), self.pool(self.features(fake))])
        real_logits, fake_logits = self.classifier(pooled).split([real.shape[0], fake.shape[0]])
        return real_logits, fake_logits


def _check_input_size(x: Tensor, min_size: int, name: str) -> None:
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"{name} needs inputs of at least {min_size}×{min_size} px; got "
            f"{tuple(x.shape[-2:])}. Use larger HR patches or fewer downsampling layers."
        )


class SRGANDiscriminator(_PooledHeadDiscriminator):
    """The SRGAN discriminator: strided 3×3 conv stack, adaptive pool, two dense layers.

    Block ``i`` has ``base_channels * 2 ** (i // 2)`` channels and stride 1 for even ``i``, 2 for
    odd ``i`` (64, 64, 128, 128, 256, 256, 512, 512 for the defaults); block 0 has no batch norm.
    The adaptive pool makes the head independent of the input size. With 4 bands the defaults
    come to ≈23.56 M parameters, almost all in the first dense layer.

    Args:
        in_bands: Number of spectral bands of the HR images.
        base_channels: Channels of the first block.
        n_blocks: Number of conv blocks (including the first).
        pool_size: Side of the adaptive average pool before the dense layers.
        fc_features: Width of the hidden dense layer.
        spectral_norm: Wrap every conv/linear in spectral norm and drop batch norm.

    Shape:
        - Input: ``(B, in_bands, H, W)`` float32, any ``H, W >= 16``.
        - Output: ``(B, 1)`` float32 logits.

    Raises:
        ValueError: If a size is < 1.
    """

    def __init__(
        self,
        in_bands: int,
        base_channels: int = 64,
        n_blocks: int = 8,
        pool_size: int = 6,
        fc_features: int = 1024,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(
            in_bands=in_bands,
            base_channels=base_channels,
            n_blocks=n_blocks,
            pool_size=pool_size,
            fc_features=fc_features,
        )
        layers = _conv_block(
            in_bands, base_channels, 3, 1, batch_norm=False, spectral_norm=spectral_norm
        )
        channels = base_channels
        for i in range(1, n_blocks):
            out_channels = base_channels * 2 ** (i // 2)
            stride = 2 if i % 2 else 1
            layers += _conv_block(
                channels, out_channels, 3, stride, batch_norm=True, spectral_norm=spectral_norm
            )
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.share_head = not spectral_norm
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            _wrap(nn.Linear(channels * pool_size * pool_size, fc_features), spectral_norm),
            nn.LeakyReLU(0.2),
            _wrap(nn.Linear(fc_features, 1), spectral_norm),
        )


class PatchGANDiscriminator(Discriminator):
    """pix2pix PatchGAN: one logit per overlapping receptive field instead of per image.

    ``n_layers`` 4×4 stride-2 convs (channels doubling up to ``8 * base_channels``, no batch norm
    on the first), one 4×4 stride-1 conv, and a 4×4 stride-1 conv to one channel. For ``H``
    divisible by ``2 ** n_layers`` the output grid is ``H // 2 ** n_layers - 2`` (e.g. 6×6 for
    64 px and ``n_layers=3``; 70×70 px receptive field).

    Args:
        in_bands: Number of spectral bands of the HR images.
        base_channels: Channels of the first conv.
        n_layers: Number of stride-2 convs.
        spectral_norm: Wrap every conv in spectral norm and drop batch norm.

    Shape:
        - Input: ``(B, in_bands, H, W)`` float32 with ``H, W >= 3 * 2 ** n_layers``.
        - Output: ``(B, 1, H', W')`` float32 patch logits.

    Raises:
        ValueError: If a size is < 1; in ``forward``, if the input is smaller than
            ``min_input_size``.
    """

    def __init__(
        self,
        in_bands: int,
        base_channels: int = 64,
        n_layers: int = 3,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        check_sizes(in_bands=in_bands, base_channels=base_channels, n_layers=n_layers)
        self.min_input_size = 3 * 2**n_layers
        layers = _conv_block(
            in_bands, base_channels, 4, 2, batch_norm=False, spectral_norm=spectral_norm
        )
        channels = base_channels
        for n in range(1, n_layers + 1):
            out_channels = base_channels * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += _conv_block(
                channels, out_channels, 4, stride, batch_norm=True, spectral_norm=spectral_norm
            )
            channels = out_channels
        layers.append(_wrap(nn.Conv2d(channels, 1, 4, 1, padding=1), spectral_norm))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Score ``x`` ``(B, in_bands, H, W)``; returns ``(B, 1, H', W')`` patch logits."""
        _check_input_size(x, self.min_input_size, type(self).__name__)
        return self.model(x)


class ESRGANDiscriminator(_PooledHeadDiscriminator):
    """ESRGAN VGG-style discriminator with an adaptive pool, so any input >= 32 px works.

    Five stages of a 3×3 stride-1 conv and a 4×4 stride-2 conv (channels ``base``, ``2 base``,
    ``4 base``, ``8 base``, ``8 base``), batch norm on all but the first conv, LeakyReLU(0.2),
    then a 4×4 adaptive average pool, a 100-unit dense layer and the logit.

    Args:
        in_bands: Number of spectral bands of the HR images.
        base_channels: Channels of the first stage.
        spectral_norm: Wrap every conv/linear in spectral norm and drop batch norm.

    Shape:
        - Input: ``(B, in_bands, H, W)`` float32 with ``H, W >= 32``.
        - Output: ``(B, 1)`` float32 logits.

    Raises:
        ValueError: If a size is < 1; in ``forward``, if the input is smaller than 32 px.
    """

    min_input_size = 32

    def __init__(self, in_bands: int, base_channels: int = 64, spectral_norm: bool = False) -> None:
        super().__init__()
        check_sizes(in_bands=in_bands, base_channels=base_channels)
        layers = _conv_block(
            in_bands, base_channels, 3, 1, batch_norm=False, spectral_norm=spectral_norm
        )
        layers += _conv_block(
            base_channels, base_channels, 4, 2, batch_norm=True, spectral_norm=spectral_norm
        )
        channels = base_channels
        for mult in (2, 4, 8, 8):
            out_channels = base_channels * mult
            layers += _conv_block(
                channels, out_channels, 3, 1, batch_norm=True, spectral_norm=spectral_norm
            )
            layers += _conv_block(
                out_channels, out_channels, 4, 2, batch_norm=True, spectral_norm=spectral_norm
            )
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.share_head = not spectral_norm
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            _wrap(nn.Linear(channels * 4 * 4, 100), spectral_norm),
            nn.LeakyReLU(0.2),
            _wrap(nn.Linear(100, 1), spectral_norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Score ``x`` ``(B, in_bands, H, W)``; returns ``(B, 1)`` logits (high = real)."""
        _check_input_size(x, self.min_input_size, type(self).__name__)
        return super().forward(x)

    def score_pair(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        _check_input_size(real, self.min_input_size, type(self).__name__)
        return super().score_pair(real, fake)


class SRGANDiscriminatorConfig(DiscriminatorFamilyConfig):
    """``discriminator`` section of the ``srgan`` family (:class:`SRGANDiscriminator`)."""

    name: Literal["srgan"] = "srgan"
    base_channels: int = Field(64, ge=1)
    n_blocks: int = Field(8, ge=2)
    pool_size: int = Field(6, ge=1)
    fc_features: int = Field(1024, ge=1)
    spectral_norm: bool = False


class PatchGANDiscriminatorConfig(DiscriminatorFamilyConfig):
    """``discriminator`` section of the ``patchgan`` family (:class:`PatchGANDiscriminator`)."""

    name: Literal["patchgan"] = "patchgan"
    base_channels: int = Field(64, ge=1)
    n_layers: int = Field(3, ge=1)
    spectral_norm: bool = False


class ESRGANDiscriminatorConfig(DiscriminatorFamilyConfig):
    """``discriminator`` section of the ``esrgan`` family (:class:`ESRGANDiscriminator`)."""

    name: Literal["esrgan"] = "esrgan"
    base_channels: int = Field(64, ge=1)
    spectral_norm: bool = False
