"""From generator output to output pixels: uint16 reflectance ×10000 or float32, nodata kept.

:class:`StripSink` feeds the tiler LR rows of a scene, converts its finished SR blocks into the
output's pixel type as they come and writes each row of blocks (a strip) when it is complete.

The generator outputs float32 reflectance ×10000 (after denormalisation); the output file holds
``uint16`` ×10000 (rounded, clipped to [0, 65535]) by default, or ``float32`` reflectance.
An LR pixel that is nodata in any band is nodata in all bands of the ``scale × scale`` HR pixels
it covers: no output pixel claims a value computed from a missing input.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np
import torch
from rasterio.windows import Window
from torch import Tensor

from datasets.cog_writer import CogWriter
from datasets.degradation import UINT16_MAX
from datasets.harmonise import STORED_SCALE, Harmonisation
from datasets.quicklook import Quicklook
from datasets.scenes import Scene
from srgan.qa_scene import SceneQA
from srgan.tiled import Block

OutputDType = Literal["uint16", "float32"]

#: Output rows written and scored in one pass of a finished strip: a strip is a tile high and
#: the output's full width, and every pass makes a few copies of its rows (overview averages,
#: the QA's float rows), so a whole strip at a time would cost gigabytes on a full-width scene.
ROWS_PER_PASS = 128


def output_nodata(input_nodata: float | None, dtype: OutputDType) -> float:
    """Nodata value of the output: ``nan`` for float32; for uint16 the input's, else 0.

    An input nodata that uint16 cannot hold (negative, fractional, NaN) falls back to 0.
    """
    if dtype == "float32":
        return float("nan")
    if input_nodata is None or math.isnan(input_nodata):
        return 0.0
    value = float(input_nodata)
    return value if 0 <= value <= UINT16_MAX and value.is_integer() else 0.0


def invalid_mask(lr: np.ndarray, input_nodata: float | None, scale: int) -> np.ndarray:
    """HR nodata mask of LR pixels.

    Args:
        lr: ``(C, h, w)`` LR input (reflectance ×10000, integer).
        input_nodata: The scene's nodata value; ``None`` means 0 (Sentinel-2's fill value).
        scale: Upscaling factor.

    Returns:
        ``(h·scale, w·scale)`` bool, True where the LR pixel is nodata in any band.
    """
    value = 0 if input_nodata is None else input_nodata
    invalid = (lr == value).any(axis=0)
    return invalid.repeat(scale, axis=0).repeat(scale, axis=1)


def to_output(sr: np.ndarray, invalid: np.ndarray, dtype: OutputDType, nodata: float) -> np.ndarray:
    """Convert SR reflectance ×10000 to the output pixel type, nodata where the input had none.

    Args:
        sr: ``(C, H, W)`` float32 reflectance ×10000; overwritten (used as scratch space, so a
            full-width strip needs no float copy).
        invalid: ``(H, W)`` bool, True where the input pixel was nodata.
        dtype: ``"uint16"`` (×10000, rounded, clipped to [0, 65535]) or ``"float32"``
            (reflectance, ``nan`` as nodata).
        nodata: uint16 nodata value; valid pixels that round to it are nudged by one, so no
            valid pixel reads as nodata.

    Returns:
        ``(C, H, W)`` array of ``dtype`` (``sr`` itself for float32).
    """
    if dtype == "float32":
        out = np.divide(sr, np.float32(STORED_SCALE), out=sr)
        out[:, invalid] = np.nan
        return out
    out = np.clip(np.rint(sr, out=sr), 0, UINT16_MAX, out=sr).astype(np.uint16)
    for band in out:  # band by band: one (H, W) mask at a time, not a (C, H, W) one
        band[band == nodata] = nodata + 1 if nodata < UINT16_MAX else nodata - 1
        band[invalid] = nodata
    return out


class StripSink:
    """Reads LR rows for the tiler and turns its finished blocks into written output rows.

    Each block is masked and converted as it arrives, into a strip buffer of the output's pixel
    type (uint16: half the tiler's float32); a complete strip is written, and scored by the QA,
    :data:`ROWS_PER_PASS` rows at a time.

    Args:
        scene: The open input scene.
        scale: Upscaling factor.
        writer: The open output writer; its profile's nodata is the output nodata.
        dtype: Output pixel type.
        look: Collects the quicklook crop, if one is wanted.
        qa: Scores every strip as written (same pass, no read-back), if given.
        restore: Write the product's digital numbers (this harmonisation undone) instead of
            harmonised values; the QA still sees harmonised values.
        strip_rows: LR rows of the tallest strip (the tile size): the strip buffer is made
            that tall once and reused (a taller strip makes it anew).

    Attributes:
        seconds: Wall time spent masking, converting and writing (QA excluded: it keeps its
            own time).
    """

    def __init__(
        self,
        scene: Scene,
        scale: int,
        writer: CogWriter,
        dtype: OutputDType,
        look: Quicklook | None,
        qa: SceneQA | None = None,
        restore: Harmonisation | None = None,
        strip_rows: int = 0,
    ) -> None:
        self.scene = scene
        self.restore = restore
        self.qa = qa
        self.scale = scale
        self.writer = writer
        self.dtype = dtype
        self.look = look
        self.nodata = writer.profile.nodata
        self.seconds = 0.0
        self._row_off = 0
        self._raw = np.empty((0, 0, 0), scene.dtype)
        # untouched pages until blocks arrive: no memory is faulted in before the first tile
        self._strip = np.empty((len(scene.bands), strip_rows * scale, scene.width * scale), dtype)

    def read(self, row_off: int, n_rows: int) -> Tensor:
        """LR rows ``[row_off, row_off + n_rows)`` as float32 reflectance ×10000."""
        self._row_off = row_off
        self._raw = self.scene.read(Window(0, row_off, self.scene.width, n_rows))
        return torch.from_numpy(self._raw.astype(np.float32))

    def _restored(self, out: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """uint16 harmonised values back in the product's DN convention; nodata kept."""
        assert self.restore is not None
        dn = self.restore.restore(out, self.scene.bands)
        restored = np.clip(np.rint(dn), 1, UINT16_MAX).astype(np.uint16)
        restored[:, invalid] = out[:, invalid]
        return restored

    def _lr(self, lr_row_off: int, lr_rows: int) -> np.ndarray:
        """The LR input rows (all columns) of output rows from the last rows read."""
        first = lr_row_off - self._row_off
        return self._raw[:, first : first + lr_rows]

    def write(self, block: Block) -> None:
        """Mask and convert one block (its rows lie in the last rows read); write the strip
        when the block completes it."""
        started = time.perf_counter()
        s = self.scale
        rows = block.lr_rows * s
        if block.lr_col_off == 0 and self._strip.shape[1] < rows:
            self._strip = np.empty((self._strip.shape[0], rows, self._strip.shape[2]), self.dtype)
        cols = slice(block.lr_col_off, block.lr_col_off + block.lr_cols)
        lr = self._lr(block.lr_row_off, block.lr_rows)[:, :, cols]
        invalid = invalid_mask(lr, self.scene.nodata, s)
        sr = block.pixels.numpy()
        if self.look is not None:
            self.look.add(block.lr_row_off, lr, sr, invalid, lr_col_off=block.lr_col_off)
        nodata = float("nan") if self.nodata is None else self.nodata
        self._strip[:, :rows, block.hr_cols] = to_output(sr, invalid, self.dtype, nodata)
        self.seconds += time.perf_counter() - started
        if block.ends_row:
            self._write_strip(block.lr_row_off, block.lr_rows)

    def _write_strip(self, lr_row_off: int, lr_rows: int) -> None:
        """Write and score the complete strip, :data:`ROWS_PER_PASS` output rows at a time."""
        step = max(1, ROWS_PER_PASS // self.scale)
        for first in range(0, lr_rows, step):
            started = time.perf_counter()
            n = min(step, lr_rows - first)
            lr = self._lr(lr_row_off + first, n)
            out = self._strip[:, first * self.scale : (first + n) * self.scale]
            if self.restore is None:
                written = out
            else:
                written = self._restored(out, invalid_mask(lr, self.scene.nodata, self.scale))
            self.writer.write((lr_row_off + first) * self.scale, written)
            self.seconds += time.perf_counter() - started
            if self.qa is not None:
                self.qa.add(lr_row_off + first, lr, out)
