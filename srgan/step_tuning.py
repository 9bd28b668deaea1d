"""How the training step runs fast on the host, without changing what it computes.

Optimizer kernel choice (fused Adam), optimizer-state strides that match their parameters,
glibc heap retention during fit, and NHWC batches. :class:`~srgan.module.SRGANModule` switches
these on and off from ``trainer``/``optim`` settings; ``bench/`` measures each one.
"""

from __future__ import annotations

import ctypes
import platform
from typing import Any

import torch
from torch import Tensor


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
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t
