"""Quicklook of a super-resolved scene: an LR | SR crop at the scene centre, as a PNG.

Collected from the strips as they stream past, so no second read of the input or the output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: Bands shown as red, green, blue when the scene has them.
RGB = ("B04", "B03", "B02")


class Quicklook:
    """Collects the centre crop of the LR input and of the SR output while strips are written.

    Args:
        width: LR scene width in pixels.
        height: LR scene height in pixels.
        scale: Upscaling factor.
        bands: Band names of the input and output, in order.
        size: LR crop edge in pixels (clipped to the scene).
    """

    def __init__(
        self, width: int, height: int, scale: int, bands: Sequence[str], size: int = 96
    ) -> None:
        edge = min(size, width, height)
        self.scale = scale
        self.row, self.col = (height - edge) // 2, (width - edge) // 2
        self.lr = np.zeros((len(bands), edge, edge), np.float32)
        self.sr = np.zeros((len(bands), edge * scale, edge * scale), np.float32)
        present = [bands.index(b) for b in RGB if b in bands]
        self.rgb = present if len(present) == 3 else [min(i, len(bands) - 1) for i in range(3)]

    def add(
        self,
        lr_row_off: int,
        lr: np.ndarray,
        sr: np.ndarray,
        invalid: np.ndarray,
        lr_col_off: int = 0,
    ) -> None:
        """Keep the crop's part of one block of rows (whole rows, or some of their columns).

        Args:
            lr_row_off: First LR row of the block.
            lr: ``(C, n, m)`` LR input (reflectance ×10000).
            sr: ``(C, n·scale, m·scale)`` SR pixels (reflectance ×10000, float).
            invalid: ``(n·scale, m·scale)`` bool nodata mask of the SR pixels.
            lr_col_off: First LR column of the block.
        """
        edge, s = self.lr.shape[-1], self.scale
        first, last = max(lr_row_off, self.row), min(lr_row_off + lr.shape[1], self.row + edge)
        left = max(lr_col_off, self.col)
        right = min(lr_col_off + lr.shape[2], self.col + edge)
        if first >= last or left >= right:
            return
        src = slice(first - lr_row_off, last - lr_row_off)
        dst = slice(first - self.row, last - self.row)
        src_cols = slice(left - lr_col_off, right - lr_col_off)
        dst_cols = slice(left - self.col, right - self.col)
        self.lr[:, dst, dst_cols] = lr[:, src, src_cols]
        hr_src = slice(src.start * s, src.stop * s)
        hr_cols = slice(src_cols.start * s, src_cols.stop * s)
        self.sr[:, dst.start * s : dst.stop * s, dst_cols.start * s : dst_cols.stop * s] = np.where(
            invalid[hr_src, hr_cols], 0, sr[:, hr_src, hr_cols]
        )

    def render(self, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
        """``uint8 (edge·scale, 2·edge·scale + 8, 3)``: LR (nearest-upsampled), gap, SR.

        Both panels share one per-band stretch taken from the LR crop, so colours compare.
        """
        s = self.scale
        lr = self.lr[self.rgb].repeat(s, axis=1).repeat(s, axis=2)
        sr = self.sr[self.rgb]
        flat = lr.reshape(3, -1)
        lo = np.percentile(flat, percentiles[0], axis=1)[:, None, None]
        hi = np.percentile(flat, percentiles[1], axis=1)[:, None, None]
        span = np.maximum(hi - lo, 1e-6)
        gap = np.full((3, lr.shape[1], 8), 255.0)
        panel = np.concatenate([(lr - lo) / span * 255, gap, (sr - lo) / span * 255], axis=2)
        return np.clip(panel, 0, 255).round().astype(np.uint8).transpose(1, 2, 0)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`render` as PNG (temporary name, then rename); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp.png")
        Image.fromarray(self.render()).save(tmp)
        tmp.replace(target)
        return target
