"""Tiled super-resolution of images of any size: overlapping tiles, blended without seams.

A network sees a tile whose borders are zero-padded, so its output is wrong within its receptive
field of the tile edge. Tiles therefore overlap, and each tile's output is weighted by a
separable window that is (almost) zero in the outer quarter of every overlap, rises as a
raised cosine (sin²) through the middle half and is flat inside. On a side that lies on the
image border there is no neighbour, so the window stays flat up to the edge and border pixels
keep their full weight. Windows are divided by the sum of all windows covering a pixel, which
is separable too (``Σ_ij wy_i·wx_j = (Σ_i wy_i)(Σ_j wx_j)``), so the blend is an exact weighted
mean without a per-pixel weight buffer.

Rows of tiles are processed top to bottom, and each row's tiles left to right, a batch at a
time. HR pixels that no later tile touches are final and are handed out as a :class:`Block`:
after each batch, the rows no later tile row touches, in the columns no later tile of the row
touches. Only the columns still being summed are held in float32 (a batch of tiles wide), and
the rows the next tile row adds to (the overlap, at the image's full width): memory does not
grow with the image's height, and at its width only by the overlap's rows, so the consumer
decides what a finished row costs (:class:`~srgan.sr_pixels.StripSink` keeps it in the output's
pixel type).

Example::

    tiler = TiledSuperResolver(model.predict, scale=4, tile_size=128, overlap=16)
    for block in tiler.stream(lambda row, rows: lr[:, row : row + rows], *lr.shape[-2:]):
        out[:, block.hr_rows, block.hr_cols] = block.pixels
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

#: ``(B, C, t, t)`` float32 LR tiles → ``(B, C, t·scale, t·scale)`` float32 SR tiles.
Predict = Callable[[Tensor], Tensor]
#: ``(row_off, n_rows)`` → ``(C, n_rows, width)`` float32 LR rows.
ReadRows = Callable[[int, int], Tensor]
#: ``(tiles_done, tiles_total)``, called after every batch of tiles.
TileProgress = Callable[[int, int], None]

#: Lowest window weight: a tile's contribution never drops to exactly 0, so every pixel has a
#: positive total weight, while the zero-padded margin of a tile still counts 1000× less than
#: its neighbour's interior.
WEIGHT_FLOOR = 1e-3
#: Fraction of an overlap, at each end, kept at :data:`WEIGHT_FLOOR` (the tile-edge margin).
TRIM = 0.25


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``, consecutive ones overlapping ≥ ``overlap``.

    Starts are spread evenly, so every overlap is about the same width and none is a sliver.

    Args:
        length: Image size along the axis (pixels, ≥ 1).
        tile: Tile size (pixels); clipped to ``length``.
        overlap: Minimum overlap of neighbouring tiles (pixels), ``0 ≤ overlap < tile``.

    Returns:
        Sorted offsets; the first is 0 and the last is ``length - min(tile, length)``.
    """
    tile = min(tile, length)
    if tile == length:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    span = length - tile
    return [round(i * span / (count - 1)) for i in range(count)]


def _ramp(width: int) -> Tensor:
    """Rising weights over ``width`` pixels: floor in the outer quarters, sin² in between."""
    t = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    u = ((t - TRIM) / (1 - 2 * TRIM)).clamp(0, 1)
    return torch.sin(u * math.pi / 2) ** 2


def axis_windows(length: int, tile: int, starts: list[int], scale: int) -> list[Tensor]:
    """Per-tile 1-D blending weights at the HR grid, already divided by their sum.

    Args:
        length: LR image size along the axis.
        tile: LR tile size (``min(tile, length)`` is used).
        starts: LR tile offsets from :func:`tile_starts`.
        scale: Upscaling factor.

    Returns:
        One float32 tensor of ``tile·scale`` weights per tile; at every HR pixel the weights of
        the tiles covering it sum to 1, and each is ≥ ``WEIGHT_FLOOR²`` before normalisation.
    """
    tile = min(tile, length)
    size = tile * scale
    windows = []
    for i, start in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        if i > 0:
            left = (starts[i - 1] + tile - start) * scale
            w[:left] *= _ramp(left)
        if i < len(starts) - 1:
            right = (start + tile - starts[i + 1]) * scale
            w[size - right :] *= _ramp(right).flip(0)
        windows.append(w.clamp_min(WEIGHT_FLOOR))
    total = torch.zeros(length * scale, dtype=torch.float64)
    for start, w in zip(starts, windows, strict=True):
        total[start * scale : start * scale + size] += w
    return [
        (w / total[s * scale : s * scale + size]).float()
        for s, w in zip(starts, windows, strict=True)
    ]


@dataclass(frozen=True)
class Block:
    """Finished SR pixels: LR rows ``[lr_row_off, lr_row_off + lr_rows)`` and LR columns
    ``[lr_col_off, lr_col_off + lr_cols)`` super-resolved.

    The blocks of one row of tiles share its rows and arrive left to right; the one with
    :attr:`ends_row` completes the rows, and the next block starts the rows below.

    Attributes:
        lr_row_off, lr_rows: The LR rows covered.
        lr_col_off, lr_cols: The LR columns covered.
        pixels: ``(C, lr_rows·scale, lr_cols·scale)`` float32, in the predictor's output units.
            A view of the blending buffer, valid until the next block is requested: copy it
            (or write it out) before asking for more; it may be overwritten in place.
        ends_row: The block reaches the image's right edge.
    """

    lr_row_off: int
    lr_rows: int
    lr_col_off: int
    lr_cols: int
    pixels: Tensor
    ends_row: bool

    @property
    def scale(self) -> int:
        """The upscaling factor (HR rows per LR row)."""
        return self.pixels.shape[-2] // self.lr_rows

    @property
    def hr_rows(self) -> slice:
        """The HR rows of :attr:`pixels` as a slice of the full SR image."""
        return slice(self.lr_row_off * self.scale, (self.lr_row_off + self.lr_rows) * self.scale)

    @property
    def hr_cols(self) -> slice:
        """The HR columns of :attr:`pixels` as a slice of the full SR image."""
        return slice(self.lr_col_off * self.scale, (self.lr_col_off + self.lr_cols) * self.scale)


@dataclass
class TileTimings:
    """Seconds spent per stage of :meth:`TiledSuperResolver.stream` (wall clock)."""

    read: float = 0.0
    model: float = 0.0  # the predictor alone (GPU kernels waited for)
    blend: float = 0.0  # weighting, device-to-host copy, accumulation
    tiles: int = 0


@dataclass
class TiledSuperResolver:
    """Run a predictor over overlapping tiles of a large image, strip by strip.

    Args:
        predict: Maps a batch of LR tiles to SR tiles (see :data:`Predict`); called with
            ``torch.no_grad`` left to it. Its output must be ``scale`` times larger.
        scale: Upscaling factor of ``predict``.
        tile_size: LR tile edge in pixels (≥ 8).
        overlap: LR overlap of neighbouring tiles in pixels, ``0 ≤ overlap ≤ tile_size // 2``;
            its outer quarters are the margin where a tile's zero-padding effects are ignored,
            so make ``overlap / 4`` at least the network's effective receptive radius.
        batch_size: Tiles per ``predict`` call (≥ 1).
        progress: Called with ``(tiles_done, tiles_total)`` after every batch of tiles.

    Raises:
        ValueError: A size is out of range.
    """

    predict: Predict
    scale: int
    tile_size: int = 128
    overlap: int = 16
    batch_size: int = 8
    progress: TileProgress | None = None
    timings: TileTimings = field(default_factory=TileTimings)

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be ≥ 1, got {self.scale}")
        if self.tile_size < 8:
            raise ValueError(f"tile_size must be ≥ 8 LR pixels, got {self.tile_size}")
        if not 0 <= self.overlap <= self.tile_size // 2:
            raise ValueError(
                f"overlap must be between 0 and tile_size // 2 = {self.tile_size // 2} LR pixels, "
                f"got {self.overlap}; lower the overlap or raise tile_size"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")

    def grid(self, height: int, width: int) -> tuple[list[int], list[int]]:
        """LR start offsets of the tiles along rows and columns of a ``height × width`` image."""
        return (
            tile_starts(height, self.tile_size, self.overlap),
            tile_starts(width, self.tile_size, self.overlap),
        )

    def stream(self, read_rows: ReadRows, height: int, width: int) -> Iterator[Block]:
        """Super-resolve an LR image of ``height × width`` pixels, yielding finished blocks.

        Args:
            read_rows: Returns LR rows ``[row_off, row_off + n_rows)`` as ``(C, n_rows, width)``
                float32; each row range is requested once, top to bottom.
            height: LR image height in pixels.
            width: LR image width in pixels.

        Yields:
            :class:`Block` objects tiling the image without gaps: rows top to bottom, and within
            a row of blocks columns left to right; each block's pixels are overwritten when the
            next one is requested.

        Raises:
            ValueError: ``predict`` returned a tensor of the wrong shape.
        """
        s, tile_h, tile_w = self.scale, min(self.tile_size, height), min(self.tile_size, width)
        ys, xs = self.grid(height, width)
        total, done = len(ys) * len(xs), 0
        wy = axis_windows(height, self.tile_size, ys, s)
        wx = axis_windows(width, self.tile_size, xs, s)
        # a batch's tiles start at most tile - overlap apart: B tiles span at most B tiles
        span = min(width, self.batch_size * tile_w) * s
        # rows a tile row leaves to the next one (their overlap), at most
        carried = max([tile_h - (b - a) for a, b in itertools.pairwise(ys)], default=0) * s
        window: Tensor | None = None  # the tile row's HR rows, columns from `left` on
        # rows the previous tile row left unfinished and those this one leaves, full width: two
        # buffers of the largest overlap, reused (no heap churn of full-width blocks)
        unfinished: list[Tensor] = []
        above = torch.zeros(0)
        for i, y0 in enumerate(ys):
            started = time.perf_counter()
            rows = read_rows(y0, tile_h)
            self.timings.read += time.perf_counter() - started
            if window is None:
                window = torch.zeros(rows.shape[0], tile_h * s, span)
                unfinished = [torch.empty(rows.shape[0], carried, width * s) for _ in range(2)]
                above = unfinished[1][:, :0]
            final = (ys[i + 1] if i + 1 < len(ys) else height) - y0
            below = unfinished[i % 2][:, : (tile_h - final) * s]
            left = 0  # first HR column not yet handed out
            for first in range(0, len(xs), self.batch_size):
                batch_x = xs[first : first + self.batch_size]
                tiles = torch.stack([rows[:, :, x : x + tile_w] for x in batch_x])
                weights = (
                    wy[i][None, :, None] * torch.stack(wx[first : first + len(batch_x)])[:, None, :]
                )
                out = self._predict(tiles, weights)
                done += len(batch_x)
                if self.progress is not None:
                    self.progress(done, total)
                started = time.perf_counter()
                for k, x in enumerate(batch_x):
                    window[:, :, x * s - left : (x + tile_w) * s - left] += out[k]
                following = first + len(batch_x)
                # columns left of the row's next tile are final; so are the rows above `final`
                right = xs[following] * s if following < len(xs) else width * s
                block = window[:, :, : right - left]
                block[:, : above.shape[1]] += above[:, :, left:right]
                below[:, :, left:right] = block[:, final * s :]
                self.timings.blend += time.perf_counter() - started
                yield Block(
                    y0,
                    final,
                    left // s,
                    (right - left) // s,
                    block[:, : final * s],
                    right == width * s,
                )
                # the columns the next batch adds to move to the front of the window
                started = time.perf_counter()
                end = (batch_x[-1] + tile_w) * s
                window[:, :, : end - right] = window[:, :, right - left : end - left].clone()
                window[:, :, end - right :] = 0
                left = right
                self.timings.blend += time.perf_counter() - started
            above = below

    def _predict(self, tiles: Tensor, weights: Tensor) -> Tensor:
        """Weighted SR tiles ``(B, C, H, W)`` on the CPU; weighting runs where the model ran."""
        started = time.perf_counter()
        out = self.predict(tiles)
        if out.is_cuda:  # kernels run asynchronously: wait, so the model time is the model's
            torch.cuda.synchronize(out.device)
        self.timings.model += time.perf_counter() - started
        self.timings.tiles += tiles.shape[0]
        expected = (tiles.shape[0], tiles.shape[1], *weights.shape[-2:])
        if tuple(out.shape) != expected:
            raise ValueError(
                f"the predictor returned {tuple(out.shape)} for tiles {tuple(tiles.shape)}; "
                f"expected {expected} (is its scale really {self.scale}?)"
            )
        started = time.perf_counter()
        out = (out.float() * weights.to(out.device)[:, None]).cpu()
        self.timings.blend += time.perf_counter() - started
        return out

    def run(self, lr: Tensor) -> Tensor:
        """Super-resolve a whole in-memory ``(C, h, w)`` LR image to ``(C, h·scale, w·scale)``."""
        (c, h, w), s = lr.shape, self.scale
        out = torch.empty(c, h * s, w * s)
        for block in self.stream(lambda row, n: lr[:, row : row + n].float(), h, w):
            out[:, block.hr_rows, block.hr_cols] = block.pixels
        return out
