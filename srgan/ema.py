"""Exponential moving average of the generator, kept inside the LightningModule's state_dict."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


class GeneratorEMA(nn.Module):
    """EMA of a generator's parameters and buffers (torch's ``AveragedModel`` underneath).

    Being an ``nn.Module`` attribute of the LightningModule, the averaged weights travel in every
    ``state_dict``: resume, weights-only loads and inference all get them.

    Args:
        generator: the network being trained.
        decay: EMA decay ``d`` in ``ema = d * ema + (1 - d) * weights``.
        start_iteration: first training iteration that updates the EMA; the first update copies
            the generator, so the average never contains its random initialisation.
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the ``n``-th update, so early averages
            follow the fast-moving weights more closely.
    """

    def __init__(
        self, generator: nn.Module, decay: float, start_iteration: int = 0, warmup: bool = False
    ) -> None:
        super().__init__()
        self.decay = decay
        self.start_iteration = start_iteration
        self.warmup = warmup
        self.averaged = AveragedModel(generator, multi_avg_fn=self._average, use_buffers=True)
        self.averaged.requires_grad_(False)

    def _decay_for(self, num_averaged: Tensor | int) -> float:
        if not self.warmup:
            return self.decay
        n = float(num_averaged)
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def _average(
        self,
        ema_params: list[Tensor] | tuple[Tensor, ...],
        params: list[Tensor] | tuple[Tensor, ...],
        num_averaged: Tensor | int,
    ) -> None:
        decay = self._decay_for(num_averaged)
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(list(ema_params), list(params), 1.0 - decay)
        else:
            # integer buffers (BatchNorm's num_batches_tracked) follow the live model
            for ema, live in zip(ema_params, params, strict=True):
                ema.copy_(live)

    @property
    def active(self) -> bool:
        """Whether the average has been updated at least once (only then is it used)."""
        return bool(self.averaged.n_averaged.item() > 0)

    def should_update(self, iteration: int) -> bool:
        """Whether training batch ``iteration`` updates the average."""
        return iteration >= self.start_iteration

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """Fold the generator's current weights into the average."""
        self.averaged.update_parameters(generator)

    @property
    def module(self) -> nn.Module:
        """The averaged generator, for validation and inference."""
        return self.averaged.module

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        return self.averaged.module(*args, **kwargs)
