"""From generator output to output pixels: uint16 reflectance ×10000 or float32, nodata kept.

:class:`StripSink` feeds the tiler LR rows of a scene and writes its finished SR strips.

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
from srgan.tiled import Strip

OutputDType = Literal["uint16", "float32"]

#: Output rows masked, converted, written and scored in one pass of :meth:`StripSink.write`:
#: a strip is a tile high and the output's full width, and every pass makes a few copies of its
#: rows (uint16, masks, overview averages, the QA's float rows), so a whole strip at a time
#: would cost gigabytes on a full-width scene.
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
    """Reads LR rows for the tiler and turns its finished strips into written output rows.

    Args:
        scene: The open input scene.
        scale: Upscaling factor.
        writer: The open output writer; its profile's nodata is the output nodata.
        dtype: Output pixel type.
        look: Collects the quicklook crop, if one is wanted.
        qa: Scores every strip as written (same pass, no read-back), if given.
        restore: Write the product's digital numbers (this harmonisation undone) instead of
            harmonised values; the QA still sees harmonised values.

    Attributes:
        seconds: Wall time spent masking, converting and writing strips (QA excluded: it
            keeps its own time).
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

    def write(self, strip: Strip) -> None:
        """Mask nodata, convert, write and score one strip (its rows lie in the last rows
        read), :data:`ROWS_PER_PASS` output rows at a time."""
        step = max(1, ROWS_PER_PASS // self.scale)
        pixels = strip.pixels.numpy()
        for first in range(0, strip.lr_rows, step):
            n = min(step, strip.lr_rows - first)
            rows = pixels[:, first * self.scale : (first + n) * self.scale]
            self._write(strip.lr_row_off + first, n, rows)

    def _write(self, lr_row_off: int, lr_rows: int, sr: np.ndarray) -> None:
        started = time.perf_counter()
        first = lr_row_off - self._row_off
        lr = self._raw[:, first : first + lr_rows]
        invalid = invalid_mask(lr, self.scene.nodata, self.scale)
        if self.look is not None:
            self.look.add(lr_row_off, lr, sr, invalid)
        nodata = float("nan") if self.nodata is None else self.nodata
        out = to_output(sr, invalid, self.dtype, nodata)
        written = out if self.restore is None else self._restored(out, invalid)
        self.writer.write(lr_row_off * self.scale, written)
        self.seconds += time.perf_counter() - started
        if self.qa is not None:
            self.qa.add(lr_row_off, lr, out)
