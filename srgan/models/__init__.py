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
    PatchGANDiscriminator,
    SRGANDiscriminator,
)
from srgan.models.rrdbnet import RRDBNet
from srgan.models.srresnet import SRResNet
from srgan.models.stochastic import StochasticSRResNet

GENERATORS: Final[dict[str, type[nn.Module]]] = {
    "srresnet": SRResNet,
    "rrdbnet": RRDBNet,
    "stochastic": StochasticSRResNet,
}

DISCRIMINATORS: Final[dict[str, type[Discriminator]]] = {
    "srgan": SRGANDiscriminator,
    "patchgan": PatchGANDiscriminator,
    "esrgan": ESRGANDiscriminator,
}


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Build the generator registered as ``name`` with constructor ``kwargs``.

    Args:
        name: One of ``GENERATORS`` (rrdbnet, srresnet, stochastic).
        **kwargs: Constructor arguments; ``in_bands`` and ``scale`` are required.

    Raises:
        ValueError: If ``name`` is unknown, or the constructor rejects a value.
    """
    return registry_lookup(GENERATORS, "generator", name)(**kwargs)


def build_discriminator(name: str, **kwargs: Any) -> Discriminator:
    """Build the discriminator registered as ``name`` with constructor ``kwargs``.

    Args:
        name: One of ``DISCRIMINATORS`` (esrgan, patchgan, srgan).
        **kwargs: Constructor arguments; ``in_bands`` is required.

    Raises:
        ValueError: If ``name`` is unknown, or the constructor rejects a value.
    """
    return registry_lookup(DISCRIMINATORS, "discriminator", name)(**kwargs)


__all__ = [
    "BLOCKS",
    "DISCRIMINATORS",
    "GENERATORS",
    "Discriminator",
    "ESRGANDiscriminator",
    "PatchGANDiscriminator",
    "RRDBNet",
    "SRGANDiscriminator",
    "SRResNet",
    "StochasticSRResNet",
    "build_block",
    "build_discriminator",
    "build_generator",
]
