"""Write a large raster strip by strip, then publish it as a Cloud-Optimized GeoTIFF, atomically.

Rows go into a temporary tiled GeoTIFF on local disk (so memory stays bounded whatever the
raster size); :meth:`CogWriter.commit` converts it with GDAL's COG driver (internal 512 px tiles,
overviews, compression) under a temporary name and only then moves it to the output path, or
uploads it for ``s3://``. Until then nothing exists at the output path, and every temporary file
is removed whether the write succeeds or fails.

Example::

    with CogWriter("out.tif", profile) as writer:
        for row_off, pixels in strips:
            writer.write(row_off, pixels)
        writer.commit()
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from datasets.errors import OutputError
from datasets.output_location import check_output, is_remote, local_path, publish

log = logging.getLogger(__name__)

Compression = Literal["deflate", "zstd", "lzw"]
#: Block edge of the temporary GeoTIFF; the writer buffers rows until a block row is complete,
#: so GDAL never re-reads and re-compresses a half-written block.
TEMP_BLOCK = 256
#: GDAL block cache for the conversion (bytes); bounds its memory on scenes of any size.
GDAL_CACHE = 256 * 2**20


@dataclass(frozen=True)
class RasterProfile:
    """What the output raster is: grid, bands, pixel type and encoding.

    Attributes:
        width: Width in pixels.
        height: Height in pixels.
        crs: Coordinate reference system.
        transform: Affine transform of the pixel corners.
        band_names: One name per band, written as band descriptions.
        dtype: ``"uint16"`` or ``"float32"``.
        nodata: Nodata value written in the file (``nan`` allowed for float32).
        compress: COG compression.
        compress_level: Compression level (deflate 1-9, zstd 1-22; ignored for lzw). The
            default 1 converts a scene 2.5× faster than GDAL's own default (6 for deflate)
            for files about 2 % larger (``bench/RESULTS.md``); ``None``: GDAL's default.
        tags: Dataset metadata (e.g. provenance), written as GeoTIFF tags.
    """

    width: int
    height: int
    crs: CRS
    transform: Affine
    band_names: Sequence[str]
    dtype: Literal["uint16", "float32"] = "uint16"
    nodata: float | None = 0
    compress: Compression = "deflate"
    compress_level: int | None = 1
    tags: Mapping[str, str] = field(default_factory=dict)


class CogWriter:
    """Strip-wise writer of one COG (see the module docstring).

    Args:
        out: Output path or ``s3://`` URI of the COG.
        profile: The raster to write.
        overwrite: Replace an existing output.
        storage_options: s3fs options for an ``s3://`` output.
        work_dir: Folder for the temporary files of an ``s3://`` output (default: the system
            temp folder); local outputs use a hidden folder next to the output, so the final
            move is an atomic rename.
        threads: Compression threads for GDAL.

    Raises:
        OutputError: The output cannot be written (raised on entry, by :meth:`write` or by
            :meth:`commit`); nothing is left at ``out`` or in temporary folders.
    """

    def __init__(
        self,
        out: str,
        profile: RasterProfile,
        *,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        work_dir: str | None = None,
        threads: int = 2,
    ) -> None:
        if len(profile.band_names) < 1:
            raise ValueError("a raster needs at least one band")
        self.out = out
        self.profile = profile
        self.overwrite = overwrite
        self.storage_options = storage_options
        self.work_dir = work_dir
        self.threads = threads
        self._tmp: Path | None = None
        self._dataset: Any = None
        self._pending: np.ndarray | None = None
        self._next_row = 0
        self._flushed = 0

    @property
    def temp_path(self) -> Path:
        """The temporary strip GeoTIFF (exists between entering and leaving the writer)."""
        if self._tmp is None:
            raise RuntimeError("use CogWriter as a context manager")
        return self._tmp / "strips.tif"

    def __enter__(self) -> CogWriter:
        check_output(self.out, overwrite=self.overwrite, storage_options=self.storage_options)
        where = self.work_dir if is_remote(self.out) else local_path(self.out).parent
        name = Path(self.out).name
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=where))
            p = self.profile
            self._dataset = rasterio.open(
                self.temp_path,
                "w",
                driver="GTiff",
                width=p.width,
                height=p.height,
                count=len(p.band_names),
                dtype=p.dtype,
                crs=p.crs,
                transform=p.transform,
                nodata=p.nodata,
                tiled=True,
                blockxsize=TEMP_BLOCK,
                blockysize=TEMP_BLOCK,
                compress="zstd",
                zstd_level=1,
                predictor=2 if p.dtype == "uint16" else 3,
                bigtiff="yes",
                num_threads=self.threads,
            )
        except (OSError, RasterioError) as err:
            self._cleanup()
            raise OutputError(f"cannot create temporary files for {self.out}: {err}") from err
        return self

    def write(self, row_off: int, pixels: np.ndarray) -> None:
        """Append rows ``[row_off, row_off + rows)``; rows must arrive in order, without gaps.

        Args:
            row_off: First row of ``pixels`` in the output grid.
            pixels: ``(bands, rows, width)`` array of the profile's dtype.

        Raises:
            ValueError: Rows out of order, or a shape or dtype that does not fit the profile.
            OutputError: The temporary file cannot be written (e.g. disk full).
        """
        p = self.profile
        expected = (len(p.band_names), pixels.shape[1], p.width)
        if row_off != self._next_row or pixels.shape != expected or pixels.dtype != p.dtype:
            raise ValueError(
                f"write(row_off={row_off}, {pixels.dtype}{pixels.shape}) does not continue the "
                f"{p.dtype} raster at row {self._next_row} with shape {expected}"
            )
        rows, last = pixels.shape[1], self._next_row + pixels.shape[1] == p.height
        self._next_row += rows
        done = 0
        if self._pending is not None:
            need = TEMP_BLOCK - self._pending.shape[1]
            if rows < need and not last:
                self._pending = np.concatenate([self._pending, pixels], axis=1)
                return
            self._put(np.concatenate([self._pending, pixels[:, :need]], axis=1))
            self._pending, done = None, min(need, rows)
        whole = rows - done if last else (rows - done) // TEMP_BLOCK * TEMP_BLOCK
        if whole:
            self._put(pixels[:, done : done + whole])
        if done + whole < rows:
            # the start of a block row: kept until the block row is complete
            self._pending = pixels[:, done + whole :].copy()

    def _put(self, block: np.ndarray) -> None:
        window = Window(0, self._flushed, self.profile.width, block.shape[1])
        try:
            self._dataset.write(block, window=window)
        except RasterioError as err:
            raise OutputError(
                f"writing {self.temp_path} failed ({err}); is the disk full?"
            ) from err
        self._flushed += block.shape[1]

    def commit(self) -> str:
        """Convert the strips to a COG and publish it at the output; returns the output URI.

        Raises:
            ValueError: Not every row was written.
            OutputError: Conversion, move or upload failed; nothing is left at the output.
        """
        p = self.profile
        if self._next_row != p.height:
            raise ValueError(f"only {self._next_row} of {p.height} rows were written")
        self._dataset.update_tags(**dict(p.tags))
        for index, name in enumerate(p.band_names, start=1):
            self._dataset.set_band_description(index, name)
        self._dataset.close()
        self._dataset = None
        cog = self.temp_path.with_name("cog.tif")
        options: dict[str, str | int] = {
            "COMPRESS": p.compress.upper(),
            "PREDICTOR": "YES",
            "BLOCKSIZE": 512,
            "OVERVIEW_RESAMPLING": "AVERAGE",
            "BIGTIFF": "IF_SAFER",
            "NUM_THREADS": self.threads,
        }
        if p.compress_level is not None and p.compress != "lzw":
            options["LEVEL"] = p.compress_level
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE):
                rasterio.shutil.copy(self.temp_path, cog, driver="COG", **options)
        except (OSError, RasterioError) as err:
            raise OutputError(f"converting to a COG failed ({err}); is the disk full?") from err
        self.temp_path.unlink()
        return publish(
            cog, self.out, overwrite=self.overwrite, storage_options=self.storage_options
        )

    def _cleanup(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            log.info("discarding the partial output of %s", self.out)
        self._cleanup()
