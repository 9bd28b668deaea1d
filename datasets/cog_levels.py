"""The tiles of a COG's full-resolution image and overviews, compressed as the rows arrive.

:class:`Pyramid` takes rows of the full-resolution image top to bottom. Each level buffers one
row of 512 px tiles, hands the finished tiles to a thread pool that applies the TIFF
predictor and compresses them (zlib and zstd release the GIL, so compression runs beside the
caller's work), and appends the compressed tiles, in row-major order, to its own data file.
Every level also passes its rows, averaged 2×2, to the next level, so the overviews are built
in the same pass. Memory stays at about one tile row per level, whatever the size of the
blocks of rows added.

Example::

    pyramid = Pyramid(width, height, bands=4, dtype=np.uint16, nodata=0, codec=..., folder=tmp)
    for rows in strips:              # (bands, n, width), top to bottom
        pyramid.add(rows)
    images = pyramid.finish(predictor=2)  # one Image per level, tiles in pyramid.files[i]
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from datasets.tiff_layout import Image

TILE = 512
#: Below this many pixels a level's rows are averaged in the caller's thread alone.
PARALLEL_HALVE_PIXELS = 1 << 20
#: Rows taken into the pyramid per pass: averaging makes a few uint32 copies of its rows, so a
#: tall block of full-width rows is halved a slice at a time (even, so no row waits).
ROWS_PER_PASS = 128
DEFLATE, ZSTD = 8, 50000  # TIFF compression codes


@dataclass(frozen=True)
class Codec:
    """How tiles are compressed: ``deflate`` or ``zstd`` at a level (1 = fastest)."""

    name: str
    level: int

    @property
    def code(self) -> int:
        """The TIFF compression code."""
        return DEFLATE if self.name == "deflate" else ZSTD

    def compressor(self) -> Callable[[bytes], bytes]:
        """A function compressing one tile's bytes."""
        if self.name == "deflate":
            return lambda data: zlib.compress(data, self.level)
        from numcodecs import Zstd

        codec = Zstd(level=self.level)
        return lambda data: bytes(codec.encode(data))


def overview_sizes(width: int, height: int, tile: int = TILE) -> list[tuple[int, int]]:
    """Sizes of the overviews GDAL's COG driver makes: halved (rounded down) until one tile
    holds the image (or a side would vanish)."""
    sizes = []
    while (width > tile or height > tile) and width > 1 and height > 1:
        width, height = width // 2, height // 2
        sizes.append((width, height))
    return sizes


def predict(tile: np.ndarray) -> np.ndarray:
    """The TIFF predictor applied to a ``(rows, cols, bands)`` tile, as bytes to compress.

    uint16: horizontal differencing (predictor 2) per band, modulo 2¹⁶. float32: the
    floating-point predictor (3): each row's values split into byte planes, most significant
    first, then byte-wise differencing with a stride of one pixel.
    """
    rows, cols, bands = tile.shape
    if tile.dtype == np.uint16:
        out = np.array(tile, dtype="<u2", order="C")  # also interleaves a band-planar view
        np.subtract(out[:, 1:], tile[:, :-1], out=out[:, 1:])
        return out
    samples = np.ascontiguousarray(tile, "<f4").view(np.uint8).reshape(rows, cols * bands, 4)
    planes = np.ascontiguousarray(samples[:, :, ::-1].transpose(0, 2, 1)).reshape(rows, -1)
    out = planes.copy()
    np.subtract(out[:, bands:], planes[:, :-bands], out=out[:, bands:])
    return out


def halve(rows: np.ndarray, nodata: float | None) -> np.ndarray:
    """2×2 averages of ``(bands, 2n, w)`` rows: ``(bands, n, w // 2)`` (an odd last column, like
    an odd last row of the image, is left out, as the overview sizes round down).

    Nodata pixels (``nan`` for floats) are left out of each average; a 2×2 block without any
    valid pixel is nodata. Integers are rounded half up.
    """
    bands, n, width = rows.shape
    if rows.dtype == np.uint16:
        return _halve_uint16(rows[:, : n // 2 * 2, : width // 2 * 2], nodata)
    blocks = rows[:, : n // 2 * 2, : width // 2 * 2].reshape(bands, n // 2, 2, width // 2, 2)
    valid = ~np.isnan(blocks) if nodata is None or math.isnan(nodata) else blocks != nodata
    total = np.where(valid, blocks, 0).sum(axis=(2, 4), dtype=np.float64)
    count = valid.sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan if nodata is None else nodata)
    return mean.astype(rows.dtype)


def _halve_uint16(rows: np.ndarray, nodata: float | None) -> np.ndarray:
    """:func:`halve` of uint16 rows of even size, in a few passes.

    Each pair of rows is summed into uint32 first (whole rows, contiguous), then neighbouring
    columns; a 2×2 block whose four pixels are valid has the mean ``(sum + 2) >> 2`` (rounded
    half up); only blocks with nodata take the general ``(2·sum + count) // (2·count)``.
    """
    down = rows[:, 0::2].astype(np.uint32)
    down += rows[:, 1::2]
    total = down[..., 0::2] + down[..., 1::2]
    mean = total + 2
    mean >>= 2
    mean = mean.astype(np.uint16)
    if nodata is None:
        return mean
    missing = rows == nodata
    if not missing.any():
        return mean
    missing = missing.view(np.uint16)
    gaps = (missing & 0xFF) + (missing >> 8)
    gaps = gaps[:, 0::2] + gaps[:, 1::2]  # nodata pixels of each 2×2 block
    partial = np.nonzero(gaps)
    counts = 4 - gaps[partial].astype(np.uint32)
    valid_sum = total[partial] - (4 - counts) * np.uint32(nodata)
    means = (2 * valid_sum + counts) // np.maximum(2 * counts, 1)
    mean[partial] = np.where(counts > 0, means, nodata)
    return mean


class _Level:
    """One image of the pyramid: row buffer, compression queue, data file.

    The buffer holds one tile row band by band, as the rows arrive; each tile is a view of it
    that the compressing thread interleaves (pixel by pixel, as the TIFF stores it) while it
    applies the predictor, so the caller's thread copies each pixel only once. A full buffer's
    tiles are compressed by all the threads while the caller waits, and the buffer then takes
    the next rows: compression never runs beside the generator or the QA, whose threads
    already use every core (beside them it slowed both and showed up in their times), and one
    buffer per level bounds memory.
    """

    def __init__(
        self, width: int, height: int, bands: int, dtype: np.dtype, path: Path, pool: Any
    ) -> None:
        self.width, self.height, self.bands, self.dtype = width, height, bands, dtype
        self.columns = math.ceil(width / TILE)
        # untouched until rows arrive: no page is faulted in before the first tile is computed
        self.buffer = np.empty((bands, TILE, self.columns * TILE), dtype)
        self.filled = 0
        self.rows_in = 0
        self.file: BinaryIO = path.open("wb")
        self.path = path
        self.pool = pool
        self.pending: deque[Future[bytes]] = deque()
        self.byte_counts: list[int] = []

    def add(self, rows: np.ndarray, compress: Callable[[bytes], bytes]) -> None:
        done = 0
        while done < rows.shape[1]:
            n = min(TILE - self.filled, rows.shape[1] - done)
            self.buffer[:, self.filled : self.filled + n, : self.width] = rows[:, done : done + n]
            self.filled += n
            done += n
            self.rows_in += n
            if self.filled == TILE or self.rows_in == self.height:
                self._submit(compress)

    def _submit(self, compress: Callable[[bytes], bytes]) -> None:
        full = self.buffer
        full[:, :, self.width :] = 0  # the right tiles' padding
        full[:, self.filled :] = 0  # the bottom tiles' padding
        for col in range(self.columns):
            tile = full[:, :, col * TILE : (col + 1) * TILE].transpose(1, 2, 0)
            self.pending.append(self.pool.submit(lambda t=tile: compress(predict(t).tobytes())))
        self.filled = 0
        self.drain()  # the tiles are views of the buffer that the next rows overwrite

    def drain(self) -> None:
        """Wait for every submitted tile and write them in order."""
        while self.pending:
            data = self.pending.popleft().result()
            self.file.write(data)
            self.byte_counts.append(len(data))

    def close(self) -> None:
        self.file.close()


class Pyramid:
    """Full-resolution tiles and overview tiles of one raster, compressed in one pass.

    Args:
        width, height: Full-resolution size in pixels.
        bands: Number of bands.
        dtype: ``uint16`` or ``float32``.
        nodata: Left out of the overviews' averages (``nan`` or ``None`` for floats: NaN).
        codec: Tile compression.
        folder: Where the levels' data files go (``level0.bin`` …).
        threads: Compression threads.
    """

    def __init__(
        self,
        width: int,
        height: int,
        bands: int,
        dtype: np.dtype | str,
        nodata: float | None,
        codec: Codec,
        folder: Path,
        threads: int,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.codec = codec
        self._compress = codec.compressor()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="cog-tiles")
        sizes = [(width, height), *overview_sizes(width, height)]
        self.levels = [
            _Level(w, h, bands, self.dtype, folder / f"level{i}.bin", self._pool)
            for i, (w, h) in enumerate(sizes)
        ]
        self._carry: list[np.ndarray | None] = [None] * len(self.levels)

    @property
    def files(self) -> list[Path]:
        """The data file of each level, full resolution first."""
        return [level.path for level in self.levels]

    def add(self, rows: np.ndarray) -> None:
        """Append ``(bands, n, width)`` rows of the full-resolution image, top to bottom."""
        for first in range(0, rows.shape[1], ROWS_PER_PASS):
            self._add(0, rows[:, first : first + ROWS_PER_PASS])

    def _add(self, index: int, rows: np.ndarray) -> None:
        level = self.levels[index]
        level.add(rows, self._compress)
        if index + 1 == len(self.levels):
            return
        carry = self._carry[index]
        if carry is not None:
            rows = np.concatenate([carry, rows], axis=1)
        even = rows.shape[1] // 2 * 2
        # an odd row waits for its partner; the image's odd last row has none and is dropped
        self._carry[index] = None if even == rows.shape[1] else rows[:, even:].copy()
        if even:
            self._add(index + 1, self._halve(rows[:, :even]))

    def _halve(self, rows: np.ndarray) -> np.ndarray:
        """:func:`halve`, band by band on the compression threads (idle here: every level
        waits for its tiles before rows go on to the next)."""
        if rows.shape[0] == 1 or rows.size < PARALLEL_HALVE_PIXELS:
            return halve(rows, self.nodata)
        bands = range(rows.shape[0])
        return np.concatenate(
            list(self._pool.map(lambda b: halve(rows[b : b + 1], self.nodata), bands))
        )

    def finish(self, predictor: int) -> list[Image]:
        """Wait for every tile; returns the images, full resolution first.

        Raises:
            ValueError: Not every row was added.
        """
        for level in self.levels:
            if level.rows_in != level.height:
                raise ValueError(f"only {level.rows_in} of {level.height} rows were added")
            level.drain()
            level.close()
        return [
            Image(
                level.width,
                level.height,
                TILE,
                self.codec.code,
                predictor,
                level.byte_counts,
                overview=i > 0,
            )
            for i, level in enumerate(self.levels)
        ]

    def close(self) -> None:
        """Stop the threads and close the files (after :meth:`finish`, or on an error)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for level in self.levels:
            level.close()
