"""glibc heap retention: keep freed memory for reuse instead of handing it back at every free.

glibc serves blocks above 32 MiB (the discriminator's dense-layer gradients and Adam moments in
training; full-width strips, overview rows and QA buffers when super-resolving a scene) with a
fresh ``mmap`` and returns them on ``free``, so every step or strip pays a page fault per 4 KiB
touched again (about a million per 640 rows of a 5490 px wide scene). While retention is on,
such blocks come from the heap and stay there once freed; afterwards the thresholds go back to
where glibc's own adaptive ones end up (32/64 MiB) and the free memory is trimmed.

Retention nests: it ends when the last of several overlapping users (a fit, a scene) ends.
On other C libraries it is a no-op.

Example::

    with retained_heap():
        super_resolve_every_strip()
"""

from __future__ import annotations

import ctypes
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_lock = threading.Lock()
_users = 0


def set_malloc_retention(retain: bool) -> None:
    """Start (``True``) or end (``False``) one use of heap retention (glibc only)."""
    global _users
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    with _lock:
        _users = _users + 1 if retain else max(0, _users - 1)
        if retain and _users == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
        elif not retain and _users == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
            libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
            libc.malloc_trim(0)


@contextmanager
def retained_heap() -> Iterator[None]:
    """Heap retention for the ``with`` block (see the module docstring)."""
    set_malloc_retention(True)
    try:
        yield
    finally:
        set_malloc_retention(False)
