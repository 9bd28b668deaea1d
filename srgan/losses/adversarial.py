"""Adversarial objectives (BCE, RaGAN, hinge, Wasserstein) and the R1 gradient penalty.

Logits are raw discriminator outputs of any shape: ``(B, 1)`` for a global critic or
``(B, 1, h, w)`` for a patch critic. Every reduction is a mean over all elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

AdversarialKind = Literal["bce", "ragan", "hinge", "wasserstein"]
KINDS: tuple[str, ...] = get_args(AdversarialKind)

DiscriminatorLoss = Callable[[Tensor, Tensor, float], Tensor]
GeneratorLoss = Callable[[Tensor, Tensor | None], Tensor]


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _bce_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return _bce(real, real_label) + _bce(fake, 0.0)


def _bce_g(fake: Tensor, real: Tensor | None) -> Tensor:
    return _bce(fake, 1.0)


# RaGAN halves the sum of its two terms, as ESRGAN does, so its published weights carry over.
def _ragan_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return 0.5 * (_bce(real - fake.mean(), real_label) + _bce(fake - real.mean(), 0.0))


def _ragan_g(fake: Tensor, real: Tensor | None) -> Tensor:
    if real is None:
        raise ValueError(
            "the ragan generator loss needs real_logits: run D on the real batch (detached) "
            "during the generator step; check AdversarialObjective.needs_real_for_generator"
        )
    return 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0))


def _hinge_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _wasserstein_d(real: Tensor, fake: Tensor, real_label: float) -> Tensor:
    return fake.mean() - real.mean()


def _critic_g(fake: Tensor, real: Tensor | None) -> Tensor:
    return -fake.mean()


_LOSSES: dict[str, tuple[DiscriminatorLoss, GeneratorLoss]] = {
    "bce": (_bce_d, _bce_g),
    "ragan": (_ragan_d, _ragan_g),
    "hinge": (_hinge_d, _critic_g),
    "wasserstein": (_wasserstein_d, _critic_g),
}


def r1_penalty(real: Tensor, real_logits: Tensor) -> Tensor:
    """Squared gradient norm of the discriminator at real samples (R1, without ``gamma / 2``).

    ``r1 = mean_b || d(sum real_logits) / d real_b ||^2``. The graph is kept
    (``create_graph=True``) so the penalty back-propagates into the discriminator's parameters.

    Args:
        real: Real batch ``(B, C, H, W)`` on which ``real.requires_grad_(True)`` was called
            *before* the discriminator forward that produced ``real_logits``.
        real_logits: Discriminator output for ``real``, ``(B, 1)`` or ``(B, 1, h, w)``.

    Returns:
        Scalar tensor (non-negative).

    Raises:
        ValueError: If ``real`` does not require grad.
    """
    if not real.requires_grad:
        raise ValueError(
            "r1_penalty needs real.requires_grad_(True) before the discriminator forward pass"
        )
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean()


class AdversarialObjective:
    """One GAN objective, chosen by name, for both players.

    Kinds (``D`` = discriminator loss, ``G`` = generator loss, ``r``/``f`` = real/fake logits,
    ``BCE(x, t)`` = mean binary cross-entropy with logits against constant target ``t``,
    ``l`` = ``real_label``):

    * ``bce``: D = BCE(r, l) + BCE(f, 0); G = BCE(f, 1).
    * ``ragan`` (relativistic average): D = [BCE(r - mean f, l) + BCE(f - mean r, 0)] / 2;
      G = [BCE(r - mean f, 0) + BCE(f - mean r, 1)] / 2, with ``r`` detached by the caller.
    * ``hinge``: D = mean relu(1 - r) + mean relu(1 + f); G = -mean f.
    * ``wasserstein``: D = mean f - mean r; G = -mean f. Requires ``r1_gamma > 0``.

    Args:
        kind: One of ``bce``, ``ragan``, ``hinge``, ``wasserstein``.
        real_label: Target for real logits in the D loss (one-sided label smoothing, e.g. 0.9);
            used by ``bce`` and ``ragan`` only.
        r1_gamma: Weight of the R1 penalty; the penalty added to D's loss is ``gamma / 2 * r1``.

    Raises:
        ValueError: On an unknown kind, ``real_label`` outside ``(0, 1]``, a negative
            ``r1_gamma``, or ``wasserstein`` with ``r1_gamma == 0``.

    Example::

        objective = AdversarialObjective("ragan", real_label=0.9)
        d_loss = objective.discriminator_loss(disc(hr), disc(sr.detach()))
        g_loss = objective.generator_loss(disc(sr), disc(hr).detach())
    """

    def __init__(
        self,
        kind: AdversarialKind,
        real_label: float = 1.0,
        r1_gamma: float = 0.0,
    ) -> None:
        if kind not in _LOSSES:
            raise ValueError(f"unknown adversarial kind {kind!r}; choose one of {list(KINDS)}")
        if not 0.0 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0, 1], got {real_label}")
        if not math.isfinite(r1_gamma) or r1_gamma < 0:
            raise ValueError(f"r1_gamma must be a finite number >= 0, got {r1_gamma}")
        if kind == "wasserstein" and r1_gamma == 0:
            raise ValueError("wasserstein needs a gradient penalty: set r1_gamma > 0")
        self.kind = kind
        self.real_label = real_label
        self.r1_gamma = r1_gamma
        self._discriminator_loss, self._generator_loss = _LOSSES[kind]

    def __repr__(self) -> str:
        return (
            f"AdversarialObjective(kind={self.kind!r}, real_label={self.real_label}, "
            f"r1_gamma={self.r1_gamma})"
        )

    @property
    def needs_real_for_generator(self) -> bool:
        """Whether :meth:`generator_loss` needs real logits (only ``ragan``)."""
        return self.kind == "ragan"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Discriminator loss, without the R1 penalty (see :meth:`penalty`).

        Args:
            real_logits: D output on the real HR batch.
            fake_logits: D output on the *detached* SR batch.

        Returns:
            Scalar tensor.
        """
        return self._discriminator_loss(real_logits, fake_logits, self.real_label)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """Generator adversarial loss.

        Args:
            fake_logits: D output on the SR batch (not detached: G learns through it).
            real_logits: D output on the real batch, detached; required for ``ragan`` only.

        Returns:
            Scalar tensor.

        Raises:
            ValueError: If the kind is ``ragan`` and ``real_logits`` is None.
        """
        return self._generator_loss(fake_logits, real_logits)

    def penalty(self, real: Tensor, real_logits: Tensor) -> Tensor:
        """R1 term to add to the D loss: ``r1_gamma / 2 * r1_penalty(real, real_logits)``.

        Returns a zero scalar without computing gradients when ``r1_gamma == 0``.

        Raises:
            ValueError: If ``r1_gamma > 0`` and ``real`` does not require grad.
        """
        if self.r1_gamma == 0:
            return real_logits.new_zeros(())
        return 0.5 * self.r1_gamma * r1_penalty(real, real_logits)

    @staticmethod
    def probabilities(logits: Tensor) -> Tensor:
        """Mean ``sigmoid(logits)``, detached: a monitoring quantity for every kind.

        Used to log ``D(y)_prob`` and ``D(G(x))_prob``. For hinge and Wasserstein critics the
        logits are not log-odds, so read it only as a trend, not a probability.
        """
        return torch.sigmoid(logits.detach()).mean()
