"""Consistency QA of a super-resolved scene, computed strip by strip while it is written.

:class:`SceneQA` receives each written strip with the input rows it came from, degrades the
output back to the input grid (the degradation the model was trained with), and accumulates
per-block and per-band scores: reflectance error and bias, spectral angle, spatial shift (phase
correlation, once a row of blocks is complete), the detail added over bicubic upsampling, and the
error on tile borders of the inference tiling against tile interiors. Nothing is read back from
the output; memory is bounded by one strip plus one row of blocks at the LR grid.

Input pixels that are nodata in any band, and LR pixels whose degradation window reaches one,
are left out of every score.

Example::

    qa = SceneQA(QAGeometry(bands, 4, h, w, tile_rows, tile_cols, 128), QAGate(), Degradation())
    for strip ...: qa.add(lr_row_off, lr_rows, written_rows)
    result = qa.finish()          # result.summary: QASummary, result.grids: per-block bands
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from datasets.degradation import Degradation
from srgan.qa_gate import QAGate
from srgan.qa_measures import (
    bicubic_sampled_rows,
    degradation_kernels,
    degrade_rows,
    phase_shifts,
    spectral_angle_degrees,
)
from srgan.qa_record import QASummary
from srgan.qa_summary import BlockScores, summarise

#: LR pixels on each side of an inner tile edge that count as "tile border" for the seam score:
#: about the receptive radius within which a tile's zero padding changes a generator's output.
SEAM_WIDTH = 4
#: Smallest block edge (LR px) on which a shift is estimated; smaller edge blocks get none.
MIN_SHIFT_BLOCK = 16
#: Output values are reflectance ×10000 in the QA, whatever the file's pixel type.
REFLECTANCE_SCALE = 10000.0


@dataclass(frozen=True)
class QAGeometry:
    """The scene and inference tiling the QA follows.

    Attributes:
        bands: Band names in output order.
        scale: Upscaling factor.
        height, width: Input (LR) size in pixels.
        tile_rows, tile_cols: LR start offsets of the inference tiles along each axis.
        tile_size: LR tile edge (clipped to the image by the tiler).
        input_nodata: The input's nodata value (``None``: 0, Sentinel-2's fill value).
    """

    bands: tuple[str, ...]
    scale: int
    height: int
    width: int
    tile_rows: tuple[int, ...]
    tile_cols: tuple[int, ...]
    tile_size: int
    input_nodata: float | None = None


def inner_edges(length: int, starts: tuple[int, ...], tile: int) -> np.ndarray:
    """LR pixel indices ``e`` of the tile edges inside the image (the line between ``e - 1``
    and ``e``): every tile's start but the first, every tile's end but the last."""
    tile = min(tile, length)
    return np.unique([s for s in starts[1:]] + [s + tile for s in starts[:-1]]).astype(int)


def tile_border(length: int, starts: tuple[int, ...], tile: int) -> np.ndarray:
    """``(length,)`` bool: pixels within :data:`SEAM_WIDTH` of an inner tile edge."""
    border = np.zeros(length, bool)
    for e in inner_edges(length, starts, tile):
        border[max(0, e - SEAM_WIDTH) : e + SEAM_WIDTH] = True
    return border


@dataclass(frozen=True)
class SceneQAResult:
    """Scores of a finished scene: the summary and the per-block grids for the sidecar.

    Attributes:
        summary: The :class:`~srgan.qa_record.QASummary` (``sidecar`` not yet set).
        grids: Band name → ``(block_rows, block_cols)`` float32 (nan where not computed).
    """

    summary: QASummary
    grids: dict[str, np.ndarray]


#: LR rows the QA takes in one pass, whatever the strips it is handed.
QA_STRIP_ROWS = 32


class SceneQA:
    """Accumulates QA scores from strips written top to bottom (see the module docstring).

    Args:
        geometry: Scene and tiling.
        gate: Thresholds (and the block size, a multiple of the scale).
        degradation: How LR was made from HR in training; ``kind="real"`` is not simulable:
            pass the default and say so in ``degradation_source``.
        degradation_source: Where ``degradation`` came from, for the record.

    Raises:
        ValueError: ``gate.block_size`` is not a multiple of the scale, or ``degradation`` is
            ``kind="real"``.
    """

    def __init__(
        self,
        geometry: QAGeometry,
        gate: QAGate,
        degradation: Degradation,
        degradation_source: str = "checkpoint",
    ) -> None:
        g = geometry
        if gate.block_size % g.scale:
            raise ValueError(
                f"QA block_size {gate.block_size} is not a multiple of the scale ×{g.scale}; "
                f"use e.g. {gate.block_size // g.scale * g.scale}"
            )
        self.geometry, self.gate = g, gate
        self.degradation, self.degradation_source = degradation, degradation_source
        self.kernels, self.radius = degradation_kernels(degradation, g.scale, g.bands)
        self.block = gate.block_size // g.scale
        # context rows: the degradation's blur radius, and bicubic's two rows
        self.dilate = math.ceil(self.radius / g.scale)
        self.context = max(self.dilate, 2)
        n_rows, n_cols = -(-g.height // self.block), -(-g.width // self.block)
        self.scores = BlockScores.empty(len(g.bands), n_rows, n_cols)
        self.col_starts = np.arange(0, g.width, self.block)
        self.row_border = tile_border(g.height, g.tile_rows, g.tile_size)
        self.col_border = torch.from_numpy(tile_border(g.width, g.tile_cols, g.tile_size))
        self.row_edges = inner_edges(g.height, g.tile_rows, g.tile_size)
        self.col_edges = inner_edges(g.width, g.tile_cols, g.tile_size)
        c, w = len(g.bands), g.width
        self._sr = torch.zeros(c, 0, w * g.scale)
        self._lr = torch.zeros(c, 0, w)
        self._tail_off = 0
        self._received = 0
        self._done = 0
        self._block_lr = np.zeros((c, self.block, w), np.float32)
        self._block_d = np.zeros((c, self.block, w), np.float32)
        self._block_valid = np.zeros((self.block, w), bool)
        self.seconds = 0.0

    def add(self, lr_row_off: int, lr: np.ndarray, written: np.ndarray) -> None:
        """Take the next strip.

        Args:
            lr_row_off: First LR row of the strip (strips arrive in order, without gaps).
            lr: ``(C, n, w)`` input rows (reflectance ×10000, any numeric dtype).
            written: ``(C, n·scale, w·scale)`` output rows as written: uint16 reflectance
                ×10000 or float32 reflectance (nan as nodata).

        Raises:
            ValueError: The strip does not continue the previous one.
        """
        s = self.geometry.scale
        n = lr.shape[1]
        if lr_row_off != self._received or written.shape[1] != n * s:
            raise ValueError(
                f"QA strip at LR row {lr_row_off} ({n} rows, {written.shape[1]} output rows) "
                f"does not continue row {self._received} at ×{s}"
            )
        # the working set of a pass is a few full-width copies of its rows: large tiles (and
        # so large strips) are taken QA_STRIP_ROWS rows at a time
        for first in range(0, n, QA_STRIP_ROWS):
            rows = slice(first, first + QA_STRIP_ROWS)
            self._add(lr[:, rows], written[:, rows.start * s : rows.stop * s])

    def _add(self, lr: np.ndarray, written: np.ndarray) -> None:
        started = time.perf_counter()
        g, s = self.geometry, self.geometry.scale
        n = lr.shape[1]
        sr = torch.empty(len(g.bands), self._sr.shape[1] + n * s, g.width * s)
        sr[:, : self._sr.shape[1]] = self._sr
        new = torch.from_numpy(written)  # strided views are fine: the copy below reads them
        if written.dtype == np.float32:
            sr[:, self._sr.shape[1] :] = torch.nan_to_num(new * REFLECTANCE_SCALE, nan=0.0)
        else:
            sr[:, self._sr.shape[1] :] = new
        lr_t = torch.cat([self._lr, torch.from_numpy(lr.astype(np.float32))], dim=1)
        self._received += n
        last = self._received == g.height
        ready = self._received if last else self._received - self.context
        if ready > self._done:
            self._process(self._done, ready, sr, lr_t)
            self._done = ready
        keep = max(self._tail_off, self._done - self.context)
        drop = keep - self._tail_off
        self._sr, self._lr = sr[:, drop * s :].clone(), lr_t[:, drop:].clone()
        self._tail_off = keep
        self.seconds += time.perf_counter() - started

    def _process(self, p0: int, p1: int, sr: Tensor, lr: Tensor) -> None:
        """Score LR rows ``[p0, p1)``; ``sr``/``lr`` hold rows from ``self._tail_off`` on."""
        g, s, off = self.geometry, self.geometry.scale, self._tail_off
        c0, c1 = max(off, p0 - self.context), self._received
        sr_ctx = sr[:, (c0 - off) * s : (c1 - off) * s]
        lr_ctx = lr[:, c0 - off : c1 - off]
        top, bottom = p0 - c0, c1 - p1
        degraded = degrade_rows(sr_ctx, self.kernels, self.radius, s, top * s, bottom * s)
        nodata = 0.0 if g.input_nodata is None else float(g.input_nodata)
        invalid = (lr_ctx == nodata).any(0).float()[None, None]
        if self.dilate:
            k = 2 * self.dilate + 1
            invalid = F.max_pool2d(invalid, k, stride=1, padding=self.dilate)
        valid = invalid[0, 0, top : top + p1 - p0] == 0
        lr_rows = lr_ctx[:, top : top + p1 - p0]
        diff = degraded - lr_rows
        sam = spectral_angle_degrees(degraded, lr_rows)
        hr_rows = sr_ctx[:, top * s : (top + p1 - p0) * s]
        # one output row per LR row (phases cycling): a quarter of the work of every row, and
        # still 128 × 512 samples in a 512 px block
        phases = torch.arange(p0, p1) % s + torch.arange(p1 - p0) * s
        up = bicubic_sampled_rows(lr_ctx, s, p0, top, p1 - p0)
        detail = (hr_rows[:, phases] - up).abs()
        synthesis = F.avg_pool1d(detail.flatten(0, 1), s).view(diff.shape)
        border = torch.from_numpy(self.row_border[p0:p1])[:, None] | self.col_border[None, :]
        row_steps, col_steps = self._steps(hr_rows, sr_ctx, top * s, p0, p1)
        r0 = p0
        while r0 < p1:  # one row of blocks at a time
            r1 = min(p1, (r0 // self.block + 1) * self.block)
            self._accumulate(r0, r1, p0, diff, sam, synthesis, valid, border)
            self._accumulate_steps(r0, r1, p0, row_steps, col_steps, valid)
            rows = slice(r0 % self.block, r0 % self.block + r1 - r0)
            self._block_d[:, rows] = degraded[:, r0 - p0 : r1 - p0].numpy()
            self._block_lr[:, rows] = lr_rows[:, r0 - p0 : r1 - p0].numpy()
            self._block_valid[rows] = valid[r0 - p0 : r1 - p0].numpy()
            if r1 % self.block == 0 or r1 == g.height:
                self._shifts(r0 // self.block, r1 - r0 // self.block * self.block)
            r0 = r1

    def _steps(
        self, hr_rows: Tensor, sr_ctx: Tensor, first: int, p0: int, p1: int
    ) -> tuple[Tensor, Tensor]:
        """Mean ``|Δ|`` (all bands, reflectance) across the LR pixel boundaries of the output.

        Returns:
            ``(rows, cols)``: ``(n, W)`` steps across the line above each LR row (HR rows
            ``r·s − 1 → r·s``; nan for row 0) and ``(n, w)`` steps across the line left of each
            LR column, summed over the ``s`` HR rows of the LR row (nan for column 0).
        """
        s, n = self.geometry.scale, p1 - p0
        below = hr_rows[:, ::s]
        if first > 0:
            above = sr_ctx[:, first - 1 : first - 1 + n * s : s]
        else:  # the image's first row has no line above it
            above = torch.cat([hr_rows[:, :1], hr_rows[:, s - 1 : (n - 1) * s : s]], dim=1)
        rows = (below - above).abs().mean(0) / REFLECTANCE_SCALE
        if p0 == 0:
            rows[0] = torch.nan
        right, left = hr_rows[:, :, s::s], hr_rows[:, :, s - 1 : -1 : s]
        cols = (right - left).abs().mean(0).view(n, s, -1).sum(1) / (REFLECTANCE_SCALE * s)
        cols = torch.cat([torch.full((n, 1), torch.nan), cols], dim=1)
        return rows, cols

    def _accumulate_steps(
        self, r0: int, r1: int, p0: int, row_steps: Tensor, col_steps: Tensor, valid: Tensor
    ) -> None:
        """Add the steps of rows ``[r0, r1)`` across inner tile edges and interior lines."""
        g, s = self.geometry, self.geometry.scale
        rows = slice(r0 - p0, r1 - p0)
        v = valid[rows]
        lr_rows = np.arange(r0, r1)
        edge_row = torch.from_numpy(np.isin(lr_rows, self.row_edges))[:, None]
        above_border = self.row_border[np.maximum(lr_rows - 1, 0)]
        inner_row = torch.from_numpy(~self.row_border[lr_rows] & ~above_border)
        hr_valid = v.repeat_interleave(s, dim=1)
        rs = torch.nan_to_num(row_steps[rows])
        finite_r = torch.isfinite(row_steps[rows]) & hr_valid
        cs = torch.nan_to_num(col_steps[rows])
        finite_c = torch.isfinite(col_steps[rows]) & v
        edge_col = torch.from_numpy(np.isin(np.arange(g.width), self.col_edges))[None]
        inner_col = ~self.col_border[None] & ~torch.roll(self.col_border, 1)[None]
        hr_starts = self.col_starts * s

        def add(values: Tensor, mask: Tensor, starts: np.ndarray) -> tuple[np.ndarray, ...]:
            m = mask.float()
            total = np.add.reduceat((values * m).sum(0).double().numpy(), starts)
            return total, np.add.reduceat(m.sum(0).double().numpy(), starts)

        e1, n1 = add(rs, finite_r & edge_row, hr_starts)
        i1, m1 = add(rs, finite_r & inner_row[:, None], hr_starts)
        e2, n2 = add(cs, finite_c & edge_col, self.col_starts)
        i2, m2 = add(cs, finite_c & inner_col & inner_row[:, None], self.col_starts)
        self.scores.add(
            r0 // self.block,
            step_edge=e1 + e2,
            step_edge_count=n1 + n2,
            step_interior=i1 + i2,
            step_interior_count=m1 + m2,
        )

    def _accumulate(
        self,
        r0: int,
        r1: int,
        p0: int,
        diff: Tensor,
        sam: Tensor,
        synthesis: Tensor,
        valid: Tensor,
        border: Tensor,
    ) -> None:
        """Add rows ``[r0, r1)`` (one block row) to the block sums."""
        rows = slice(r0 - p0, r1 - p0)
        v = valid[rows].float()
        d = diff[:, rows] / REFLECTANCE_SCALE
        err = d.abs() * v
        mean_err = err.mean(0)
        b = border[rows].float() * v
        i = (1 - border[rows].float()) * v

        def cols(x: Tensor) -> np.ndarray:
            summed = x.sum(dim=-2).double().numpy()
            return np.add.reduceat(summed, self.col_starts, axis=-1)

        self.scores.add(
            r0 // self.block,
            pixels=np.add.reduceat(np.full(v.shape[1], r1 - r0, float), self.col_starts),
            valid=cols(v),
            error=cols(err),
            bias=cols(d * v),
            angle=cols(sam[rows] * v),
            synthesis=cols(synthesis[:, rows] / REFLECTANCE_SCALE * v),
            border_error=cols(mean_err * b),
            border_count=cols(b),
            interior_error=cols(mean_err * i),
            interior_count=cols(i),
        )

    def _shifts(self, block_row: int, n_rows: int) -> None:
        """Phase-correlate each block of a finished block row, band by band, in one batch per
        block width (the FFTs of all blocks and bands at once)."""
        pairs: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for j, start in enumerate(self.col_starts):
            x0 = int(start)
            x1 = min(x0 + self.block, self.geometry.width)
            valid = self._block_valid[:n_rows, x0:x1]
            if min(valid.shape) < MIN_SHIFT_BLOCK or valid.mean() < self.gate.min_valid_share:
                continue
            ref = self._block_lr[:, :n_rows, x0:x1].copy()
            moved = self._block_d[:, :n_rows, x0:x1].copy()
            # nodata filled with the band's mean: no structure, so no false correlation
            ref[:, ~valid] = ref[:, valid].mean(axis=1)[:, None]
            moved[:, ~valid] = moved[:, valid].mean(axis=1)[:, None]
            pairs.setdefault(x1 - x0, []).append((j, ref, moved))
        bands = len(self.geometry.bands)
        for group in pairs.values():
            shifts = phase_shifts(
                np.concatenate([ref for _, ref, _ in group]),
                np.concatenate([moved for _, _, moved in group]),
            )
            distance = np.hypot(shifts[:, 0], shifts[:, 1]).reshape(len(group), bands)
            for (j, _, _), values in zip(group, distance, strict=True):
                self.scores.shift[:, block_row, j] = values

    def finish(self) -> SceneQAResult:
        """The scene's summary and per-block grids (call once every row was added).

        Raises:
            ValueError: Not every input row was added.
        """
        if self._done != self.geometry.height:
            raise ValueError(f"QA saw {self._done} of {self.geometry.height} LR rows")
        started = time.perf_counter()
        summary, grids = summarise(
            self.scores,
            self.geometry.bands,
            self.gate,
            self.degradation.to_attrs(self.geometry.scale, self.geometry.bands),
            self.degradation_source,
        )
        self.seconds += time.perf_counter() - started
        return SceneQAResult(summary, grids)
