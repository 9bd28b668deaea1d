"""How the training step runs fast on the host, without changing what it computes.

Optimizer kernel choice (fused Adam), optimizer-state strides that match their parameters,
glibc heap retention during fit, NHWC weights and batches, and ``torch.compile``.
:class:`HostTuning` switches these on and off around a fit from the ``trainer``/``optim``
settings; :class:`~srgan.module.SRGANModule` declares it as its callback, so every Trainer that
fits the module applies them. ``bench/`` measures each one.
"""

from __future__ import annotations

import ctypes
import platform
from typing import TYPE_CHECKING, Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from srgan.config import TrainingConfig

if TYPE_CHECKING:
    from srgan.module import SRGANModule


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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def set_malloc_retention(retain: bool) -> None:
    """Keep freed blocks in the heap during fit, then hand them back (glibc only, else no-op).

    glibc serves blocks above 32 MiB (D's dense-layer gradients, Adam moments) with a fresh
    mmap and returns them on free, so every step pays a page fault per 4 KiB touched again.
    Afterwards the thresholds are left where glibc's own adaptive ones end up (32/64 MiB).
    """
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    if retain:
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    else:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
        libc.malloc_trim(0)


def to_channels_last(t: Tensor) -> Tensor:
    """``t`` in NHWC memory order when it is a 4-D batch; anything else unchanged."""
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


class HostTuning(Callback):
    """Apply the host settings of a config around a fit, and undo them when it ends.

    Args:
        config: Reads ``trainer.channels_last``, ``trainer.retain_freed_memory``,
            ``trainer.compile`` and ``optim.fused``.
    """

    def __init__(self, config: TrainingConfig) -> None:
        self.trainer_config, self.fused = config.trainer, config.optim.fused

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and self.trainer_config.channels_last:
            # Before DDP wraps the module and any optimizer state exists: DDP lays out its
            # gradient buckets by the parameters' strides at that moment, and a parameter made
            # NHWC afterwards gets its averaged gradient back with the elements mixed up.
            pl_module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.trainer_config.retain_freed_memory:
            set_malloc_retention(True)
        if self.trainer_config.compile:
            module = cast("SRGANModule", pl_module)
            module.generator.compile()
            module.discriminator.compile()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the optimizers are built and a resumed state is loaded: that state carries the
        # "fused" flag and the moment layout it was saved with.
        for optimizer in trainer.optimizers:
            set_fused(optimizer, self.fused)
            match_state_layout(optimizer)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # A callback cannot return a new batch, but Lightning hands this same list (what the
        # default collate makes of (lr, hr) samples) to the training step.
        if self.trainer_config.channels_last and isinstance(batch, list):
            batch[:] = [to_channels_last(t) for t in batch]

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # NHWC is a training-speed choice; inference and metrics outside fit see plain NCHW.
        if self.trainer_config.channels_last:
            pl_module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        if self.trainer_config.retain_freed_memory:
            set_malloc_retention(False)
