"""Normalisation of reflectance ×10000 for the model, and its inverse for inference.

On disk: uint16 reflectance ×10000. In the model: float32, range set by the strategy below.
Strategies are chosen by name from :data:`NORMALISATIONS`:

- ``normalise_10k``: ``x / 10000`` clipped to [0, 1].
- ``normalise_10k_signed``: ``x / 10000 · 2 − 1`` clipped to [−1, 1].
- ``zero_one``: per-patch, per-band min-max using the *reference* tensor's range (the LR input by
  default in :class:`~datasets.patch_dataset.PatchDataset`, the only one inference has), so LR
  and HR share one mapping; the reference lands in [0, 1], the other tensor may overshoot slightly.
- ``identity``: float32 cast only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from datasets.harmonise import STORED_SCALE

NormalisationName = Literal["normalise_10k", "normalise_10k_signed", "zero_one", "identity"]

# Keeps a flat band (max == min) finite instead of dividing by zero.
_EPS = 1e-6

Transform = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def _band_range(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band min and span of a ``(..., C, H, W)`` tensor, shaped to broadcast over H, W."""
    flat = reference.float().flatten(-2)
    low = flat.amin(dim=-1, keepdim=True).unsqueeze(-1)
    high = flat.amax(dim=-1, keepdim=True).unsqueeze(-1)
    return low, (high - low).clamp_min(_EPS)


def _zero_one(x: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    low, span = _band_range(x if reference is None else reference)
    return (x - low) / span


def _zero_one_inverse(y: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    if reference is None:
        raise ValueError(
            "denormalise(..., 'zero_one') needs reference=: the tensor (reflectance ×10000) "
            "whose range normalise() used, e.g. the LR input of the model"
        )
    low, span = _band_range(reference)
    return y * span + low


@dataclass(frozen=True)
class Normalisation:
    """A named strategy: ``forward(x, reference)`` and its ``inverse(y, reference)``."""

    forward: Transform
    inverse: Transform
    description: str


NORMALISATIONS: dict[str, Normalisation] = {
    "normalise_10k": Normalisation(
        forward=lambda x, _: (x / STORED_SCALE).clamp(0.0, 1.0),
        inverse=lambda y, _: y * STORED_SCALE,
        description="x / 10000 clipped to [0, 1]",
    ),
    "normalise_10k_signed": Normalisation(
        forward=lambda x, _: (x / STORED_SCALE * 2.0 - 1.0).clamp(-1.0, 1.0),
        inverse=lambda y, _: (y + 1.0) / 2.0 * STORED_SCALE,
        description="x / 10000 * 2 - 1 clipped to [-1, 1]",
    ),
    "zero_one": Normalisation(
        forward=_zero_one,
        inverse=_zero_one_inverse,
        description="per-patch, per-band min-max of a reference tensor to [0, 1]",
    ),
    "identity": Normalisation(
        forward=lambda x, _: x,
        inverse=lambda y, _: y,
        description="float32 cast only",
    ),
}
"""Registry of strategies; its keys are the valid ``name`` values."""


def get_normalisation(name: str) -> Normalisation:
    """The strategy called ``name``.

    Raises:
        ValueError: unknown ``name``; the message lists the valid ones.
    """
    try:
        return NORMALISATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown normalisation {name!r}; choose one of {sorted(NORMALISATIONS)}"
        ) from None


def normalise(
    x: torch.Tensor, name: str = "normalise_10k", *, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Map reflectance ×10000 to the model's float32 range.

    Args:
        x: ``(..., C, H, W)`` reflectance ×10000, any real dtype.
        name: one of :data:`NORMALISATIONS`.
        reference: ``zero_one`` only: tensor whose per-band range defines the mapping
            (default ``x`` itself); same leading and band dimensions as ``x``.

    Returns:
        float32 tensor of the shape of ``x``.

    Raises:
        ValueError: unknown ``name``.
    """
    return get_normalisation(name).forward(x.float(), reference)


def denormalise(
    y: torch.Tensor, name: str = "normalise_10k", *, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Invert :func:`normalise`: model output back to float32 reflectance ×10000.

    Args:
        y: ``(..., C, H, W)`` float tensor in the strategy's range.
        name: one of :data:`NORMALISATIONS`.
        reference: ``zero_one`` only, required: the same reference tensor (reflectance ×10000)
            that :func:`normalise` used, e.g. the LR input.

    Returns:
        float32 reflectance ×10000 (neither rounded nor clipped to uint16).

    Raises:
        ValueError: unknown ``name``, or ``zero_one`` without ``reference``.
    """
    return get_normalisation(name).inverse(y.float(), reference)
