"""Whether glibc serves a large block from its heap or with a fresh mmap (heap retention)."""

import ctypes

import numpy as np

#: Above glibc's largest adaptive mmap threshold (32 MiB) and larger than any free gap a long
#: test process leaves in its heap (a free gap that fits would serve the block without mmap
#: whatever the threshold); never touched, so it costs address space, not memory.
BLOCK = 768 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mapped_bytes() -> int:
    """Bytes glibc serves with their own mmap (``hblkhd``) right now."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().hblkhd)


def large_block_is_mapped() -> bool:
    """Whether a fresh large array gets its own mmap (no retention) or comes from the heap."""
    before = _mapped_bytes()
    block = np.empty(BLOCK, np.uint8)
    mapped = _mapped_bytes() - before >= BLOCK
    del block
    return mapped
