"""How the training step runs fast on the host, without changing what it computes.

Optimizer kernel choice (fused Adam), optimizer-state strides that match their parameters,
glibc heap retention during fit, NHWC weights and batches, intra-op threads and
``torch.compile``. :class:`HostTuning` resolves them (config value, else measured on this
machine, else built-in: :mod:`srgan.step_settings`) and switches them on and off around a fit;
:class:`~srgan.module.SRGANModule` declares it as its callback, so every Trainer that fits the
module applies them. ``bench/`` measures each one.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from srgan.config import TrainingConfig
from srgan.heap import set_malloc_retention
from srgan.step_settings import StepSettings, resolve_step_settings

if TYPE_CHECKING:
    from srgan.module import SRGANModule

log = logging.getLogger(__name__)


def set_fused(optimizer: Any, fused: bool) -> None:
    """Select torch's fused Adam/AdamW kernel (``None`` restores torch's own default)."""
    for group in optimizer.param_groups:
        group["fused"] = True if fused else None


def match_state_layout(optimizer: Any) -> None:
    """Give each per-parameter state tensor its parameter's strides.

    The fused kernels walk parameter, gradient and moments as flat buffers and silently mix up
    elements when an NCHW moment meets an NHWC parameter, e.g. after resuming a checkpoint
    written with another ``trainer.channels_last`` setting.
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if (
                isinstance(value, Tensor)
                and value.shape == param.shape
                and value.stride() != param.stride()
            ):
                state[key] = torch.empty_like(param).copy_(value)


def to_channels_last(t: Tensor) -> Tensor:
    """``t`` in NHWC memory order when it is a 4-D batch; anything else unchanged."""
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


class HostTuning(Callback):
    """Apply the resolved step settings of a config around a fit, and undo them when it ends.

    Args:
        config: Its ``trainer`` and ``optim.fused`` settings, resolved by
            :func:`~srgan.step_settings.resolve_step_settings` when the fit is set up.

    Attributes:
        settings: What this fit runs with (``None`` before the fit is set up); ``precision``
            is the Trainer's own.
    """

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.settings: StepSettings | None = None
        self._threads_before: int | None = None
        self._retaining = False

    @property
    def _settings(self) -> StepSettings:
        if self.settings is None:
            raise RuntimeError("HostTuning is used before the fit is set up")
        return self.settings

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        resolved = resolve_step_settings(self.config, trainer.strategy.root_device)
        sources = {**resolved.sources}
        if str(trainer.precision) != resolved.precision:
            sources["precision"] = "config"  # the Trainer was built with another precision
        self.settings = dataclasses.replace(
            resolved, precision=str(trainer.precision), sources=sources
        )
        log.info("training step settings: %s", self.settings.describe())
        if self.settings.channels_last:
            # Before DDP wraps the module and any optimizer state exists: DDP lays out its
            # gradient buckets by the parameters' strides at that moment, and a parameter made
            # NHWC afterwards gets its averaged gradient back with the elements mixed up.
            pl_module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        settings = self._settings
        if settings.threads is not None:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(settings.threads)
        if settings.retain_freed_memory:
            set_malloc_retention(True)
            self._retaining = True
        if settings.compile:
            module = cast("SRGANModule", pl_module)
            module.generator.compile()
            module.discriminator.compile()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the optimizers are built and a resumed state is loaded: that state carries the
        # "fused" flag and the moment layout it was saved with.
        for optimizer in trainer.optimizers:
            set_fused(optimizer, self._settings.fused)
            match_state_layout(optimizer)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # A callback cannot return a new batch, but Lightning hands this same list (what the
        # default collate makes of (lr, hr) samples) to the training step.
        if self._settings.channels_last and isinstance(batch, list):
            batch[:] = [to_channels_last(t) for t in batch]

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # NHWC is a training-speed choice; inference and metrics outside fit see plain NCHW.
        if self._settings.channels_last:
            pl_module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        self._restore_process()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        # A failed or stopped fit (a step trial ends its fits this way) must not leave the
        # process retaining freed memory or on other threads for whatever runs next in it.
        self._restore_process()

    def _restore_process(self) -> None:
        """Undo the process-wide settings of this fit (once; each call after is a no-op)."""
        if self._retaining:
            set_malloc_retention(False)
            self._retaining = False
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None


def applied_step_settings(trainer: Trainer) -> StepSettings | None:
    """The settings the :class:`HostTuning` callback of ``trainer`` applied, if it has one."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    return next((c.settings for c in callbacks if isinstance(c, HostTuning)), None)
