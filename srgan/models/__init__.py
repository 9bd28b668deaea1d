"""Generators and discriminators as pure ``nn.Module``s, selectable by name.

Generators map ``(B, in_bands, h, w)`` float32 reflectance in [0, 1] to
``(B, out_bands, h * scale, w * scale)``; discriminators map HR-sized ``(B, bands, H, W)`` to
logits. Training logic lives in the LightningModule; nothing here knows about Lightning.

Example::

    >>> g = build_generator("srresnet", in_bands=4, scale=4, block="rcab")
    >>> d = build_discriminator("patchgan", in_bands=4, spectral_norm=True)
"""

from typing import Any, Final

from torch import nn

from srgan.models.blocks import BLOCKS, build_block, registry_lookup
from srgan.models.discriminators import (
    Discriminator,
    ESRGANDiscriminator,
    ESRGANDiscriminatorConfig,
    PatchGANDiscriminator,
    PatchGANDiscriminatorConfig,
    SRGANDiscriminator,
    SRGANDiscriminatorConfig,
)
from srgan.models.family import DiscriminatorFamilyConfig, Family, GeneratorFamilyConfig
from srgan.models.rrdbnet import RRDBNet, RRDBNetConfig
from srgan.models.srresnet import SRResNet, SRResNetConfig
from srgan.models.stochastic import StochasticConfig, StochasticSRResNet

#: Generator families by name: a new family is a file with its network and config, and a line here.
GENERATORS: Final[dict[str, Family[nn.Module]]] = {
    "srresnet": Family(SRResNet, SRResNetConfig),
    "rrdbnet": Family(RRDBNet, RRDBNetConfig),
    "stochastic": Family(StochasticSRResNet, StochasticConfig),
}

DISCRIMINATORS: Final[dict[str, Family[Discriminator]]] = {
    "srgan": Family(SRGANDiscriminator, SRGANDiscriminatorConfig),
    "patchgan": Family(PatchGANDiscriminator, PatchGANDiscriminatorConfig),
    "esrgan": Family(ESRGANDiscriminator, ESRGANDiscriminatorConfig),
}


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Build the generator registered as ``name`` with constructor ``kwargs``.

    Args:
        name: One of ``GENERATORS`` (rrdbnet, srresnet, stochastic).
        **kwargs: Constructor arguments; ``in_bands`` and ``scale`` are required.

    Raises:
        ValueError: If ``name`` is unknown, or the constructor rejects a value.
    """
    return registry_lookup(GENERATORS, "generator", name).network(**kwargs)


def build_discriminator(name: str, **kwargs: Any) -> Discriminator:
    """Build the discriminator registered as ``name`` with constructor ``kwargs``.

    Args:
        name: One of ``DISCRIMINATORS`` (esrgan, patchgan, srgan).
        **kwargs: Constructor arguments; ``in_bands`` is required.

    Raises:
        ValueError: If ``name`` is unknown, or the constructor rejects a value.
    """
    return registry_lookup(DISCRIMINATORS, "discriminator", name).network(**kwargs)


__all__ = [
    "BLOCKS",
    "DISCRIMINATORS",
    "GENERATORS",
    "Discriminator",
    "DiscriminatorFamilyConfig",
    "ESRGANDiscriminator",
    "ESRGANDiscriminatorConfig",
    "Family",
    "GeneratorFamilyConfig",
    "PatchGANDiscriminator",
    "PatchGANDiscriminatorConfig",
    "RRDBNet",
    "RRDBNetConfig",
    "SRGANDiscriminator",
    "SRGANDiscriminatorConfig",
    "SRResNet",
    "SRResNetConfig",
    "StochasticConfig",
    "StochasticSRResNet",
    "build_block",
    "build_discriminator",
    "build_generator",
]
