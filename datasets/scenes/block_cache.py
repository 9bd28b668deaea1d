"""GDAL's raster block cache, capped while scenes are read and outputs written.

GDAL keeps decoded raster blocks in one process-wide cache, by default up to 5 % of the
machine's memory (1.2 GB on 24 GB, 6.4 GB on 128 GB). A scene stays open for its whole read,
strip by strip, so the cache would keep every decoded block of it and memory would grow with
the scene's height. :func:`bounded_block_cache` caps it for the work in its ``with`` block.

GDAL has one cache per process: threads at work on scenes at once (scenes tiled in parallel)
share it, capped at :data:`GDAL_CACHE_BYTES` per such thread (never above GDAL's own cap; uses
nested in one thread, such as a COG conversion inside a super-resolution, count once), and the
last to end lifts the cap. A ``GDAL_CACHEMAX`` set in the environment or in an enclosing
:class:`rasterio.Env` wins.

Example::

    with bounded_block_cache(), open_scene(uri) as scene:
        for row in range(0, scene.height, 256):
            strip = scene.read(window=Window(0, row, scene.width, 256))
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import rasterio.env

#: The cap in bytes per scene at work. A strip needs only the current row of the scene's file
#: tiles (~90 MB for four bands of 1024² JP2 tiles across 10 980 px), which this still holds,
#: so no tile is decoded twice.
GDAL_CACHE_BYTES = 256 * 2**20

_lock = threading.Lock()
_depth: dict[int, int] = {}  # thread id → its nested uses, for the threads at work
_restore: int | None = None  # GDAL's cap before the first user, while the cap is ours


def _set_elsewhere() -> bool:
    """Whether the user chose GDAL's cache size (environment or an enclosing rasterio.Env)."""
    if "GDAL_CACHEMAX" in os.environ:
        return True
    return rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()


@contextmanager
def bounded_block_cache() -> Iterator[None]:
    """Cap GDAL's block cache at :data:`GDAL_CACHE_BYTES` per thread at work for the block."""
    global _restore
    thread = threading.get_ident()
    with _lock:
        if not _depth and not _set_elsewhere():
            _restore = int(rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
        _depth[thread] = _depth.get(thread, 0) + 1
        _apply()
    try:
        yield
    finally:
        with _lock:
            _depth[thread] -= 1
            if not _depth[thread]:
                del _depth[thread]
            _apply()


def _apply() -> None:
    """Set GDAL's cap for the threads at work now, or give back the one from before (lock
    held)."""
    global _restore
    if _restore is None:
        return
    if _depth:  # never above what GDAL would have used (5 % of a small machine's memory)
        cap = min(GDAL_CACHE_BYTES * len(_depth), _restore)
        rasterio.env.set_gdal_config("GDAL_CACHEMAX", cap)
    else:
        rasterio.env.set_gdal_config("GDAL_CACHEMAX", _restore)
        _restore = None
