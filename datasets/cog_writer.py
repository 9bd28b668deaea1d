"""Write a large raster strip by strip as a Cloud-Optimized GeoTIFF, atomically, in one pass.

Rows are cut into 512 px tiles as they arrive; the tiles, and those of the overviews (2×2
averages, cascaded level by level), are compressed by a thread pool on every core as each
tile row fills, and appended to one data file per level (:mod:`datasets.cog_levels`). Publishing
then only writes the TIFF directories (georeference, nodata and metadata copied from a
one-pixel GeoTIFF that GDAL writes with the same profile: :mod:`datasets.tiff_layout`) and
concatenates the compressed tiles behind them in COG order, smallest overview first; no pixel
is read back, decompressed or compressed again. Memory stays bounded (one tile row per level)
whatever the raster size.

``lzw`` has no encoder here: those rasters go through a temporary tiled GeoTIFF and GDAL's
COG driver (a second pass over the data), as all rasters did before.

The COG is assembled under a temporary name and only then moved to the output path, or
uploaded for ``s3://``. Until then nothing exists at the output path, and every temporary file
is removed whether the write succeeds or fails.

Example::

    with CogWriter("out.tif", profile) as writer:
        for row_off, pixels in strips:
            writer.write(row_off, pixels)
        writer.commit()
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from datasets.cog_levels import Codec, Pyramid
from datasets.errors import OutputError
from datasets.output_location import check_output, is_remote, local_path, publish
from datasets.scenes import bounded_block_cache
from datasets.tiff_layout import template_tags, tiff_header

log = logging.getLogger(__name__)

Compression = Literal["deflate", "zstd", "lzw"]
#: Compressions written in one pass (the others go through GDAL's COG driver).
ONE_PASS = ("deflate", "zstd")
#: Block edge of the temporary GeoTIFF of the two-pass path; the writer buffers rows until a
#: block row is complete, so GDAL never re-reads and re-compresses a half-written block.
TEMP_BLOCK = 256
#: Compression levels when the profile leaves them to the library (GDAL's defaults).
LIBRARY_LEVELS = {"deflate": 6, "zstd": 9}
#: Files this big need BigTIFF's 64-bit offsets (a margin below 4 GiB for the directories).
BIGTIFF_BYTES = 2**32 - 2**26


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
        compress: COG compression. ``zstd`` (the default) compresses 3.5-17× faster than
            ``deflate`` at level 1 into files within 2 % (``bench/RESULTS.md``, *COG
            compression*); ``deflate`` for readers built without zstd (GDAL < 2.3).
        compress_level: Compression level (deflate 1-9, zstd 1-22; ignored for lzw). The
            default 1 is the fastest; ``None``: GDAL's default (6 for deflate, 9 for zstd).
        tags: Dataset metadata (e.g. provenance), written as GeoTIFF tags.
    """

    width: int
    height: int
    crs: CRS
    transform: Affine
    band_names: Sequence[str]
    dtype: Literal["uint16", "float32"] = "uint16"
    nodata: float | None = 0
    compress: Compression = "zstd"
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
        threads: Compression threads.

    Attributes:
        encode_wait_seconds: Time :meth:`write` and publishing spent in the one-pass encoder:
            cutting tiles, averaging overviews and waiting for the compression threads.

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
        self.encode_wait_seconds = 0.0
        self._tmp: Path | None = None
        self._dataset: Any = None
        self._pyramid: Pyramid | None = None
        self._pending: np.ndarray | None = None
        self._next_row = 0
        self._flushed = 0

    @property
    def one_pass(self) -> bool:
        """Whether the tiles are compressed as they arrive (``deflate``, ``zstd``)."""
        return self.profile.compress in ONE_PASS

    @property
    def temp_path(self) -> Path:
        """The temporary data: full-resolution tiles, or the strip GeoTIFF of the two-pass path
        (exists between entering and leaving the writer)."""
        if self._tmp is None:
            raise RuntimeError("use CogWriter as a context manager")
        return self._tmp / ("level0.bin" if self.one_pass else "strips.tif")

    def __enter__(self) -> CogWriter:
        check_output(self.out, overwrite=self.overwrite, storage_options=self.storage_options)
        where = self.work_dir if is_remote(self.out) else local_path(self.out).parent
        name = Path(self.out).name
        p = self.profile
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=where))
            if self.one_pass:
                level = p.compress_level or LIBRARY_LEVELS[p.compress]
                self._pyramid = Pyramid(
                    p.width,
                    p.height,
                    len(p.band_names),
                    p.dtype,
                    p.nodata,
                    Codec(p.compress, level),
                    self._tmp,
                    self.threads,
                )
            else:
                self._dataset = self._open_strips()
        except (OSError, RasterioError) as err:
            self._cleanup()
            raise OutputError(f"cannot create temporary files for {self.out}: {err}") from err
        return self

    def _open_strips(self) -> Any:
        p = self.profile
        return rasterio.open(
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
        if self._pyramid is not None:
            started = time.perf_counter()
            try:
                self._pyramid.add(pixels)
            except OSError as err:
                raise OutputError(
                    f"writing {self.temp_path} failed ({err}); is the disk full?"
                ) from err
            self._next_row += pixels.shape[1]
            self.encode_wait_seconds += time.perf_counter() - started
            return
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
        """Finish the COG and publish it at the output; returns the output URI.

        Raises:
            ValueError: Not every row was written.
            OutputError: Assembly, conversion, move or upload failed; nothing is left at the
                output.
        """
        p = self.profile
        if self._next_row != p.height:
            raise ValueError(f"only {self._next_row} of {p.height} rows were written")
        assert self._tmp is not None
        cog = self._tmp / "cog.tif"
        try:
            if self._pyramid is not None:
                self._assemble(cog)
            else:
                self._convert(cog)
        except (OSError, RasterioError) as err:
            raise OutputError(f"writing the COG failed ({err}); is the disk full?") from err
        return publish(
            cog, self.out, overwrite=self.overwrite, storage_options=self.storage_options
        )

    def _template(self) -> Path:
        """A one-pixel GeoTIFF of the profile: GDAL encodes georeference, nodata, tags."""
        assert self._tmp is not None
        p = self.profile
        path = self._tmp / "template.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=1,
            height=1,
            count=len(p.band_names),
            dtype=p.dtype,
            crs=p.crs,
            transform=p.transform,
            nodata=p.nodata,
            bigtiff="no",
        ) as template:
            template.update_tags(**dict(p.tags))
            for index, name in enumerate(p.band_names, start=1):
                template.set_band_description(index, name)
        return path

    def _assemble(self, cog: Path) -> None:
        """Directories first, then the tiles of each level, smallest overview first."""
        assert self._pyramid is not None
        started = time.perf_counter()
        images = self._pyramid.finish(predictor=2 if self.profile.dtype == "uint16" else 3)
        self._pyramid.close()
        self.encode_wait_seconds += time.perf_counter() - started
        shared = template_tags(self._template())
        data = sum(image.data_size for image in images)
        head = tiff_header(images, shared, bigtiff=data >= BIGTIFF_BYTES)
        if len(head) + data >= 2**32 and data < BIGTIFF_BYTES:  # directories pushed it over
            head = tiff_header(images, shared, bigtiff=True)
        with cog.open("wb") as target:
            target.write(head)
            for path in reversed(self._pyramid.files):
                with path.open("rb") as source:
                    _copy(source, target)
                path.unlink()

    def _convert(self, cog: Path) -> None:
        """The two-pass path: strip GeoTIFF → GDAL's COG driver."""
        p = self.profile
        self._dataset.update_tags(**dict(p.tags))
        for index, name in enumerate(p.band_names, start=1):
            self._dataset.set_band_description(index, name)
        self._dataset.close()
        self._dataset = None
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
        with bounded_block_cache():
            rasterio.shutil.copy(self.temp_path, cog, driver="COG", **options)
        self.temp_path.unlink()

    def _cleanup(self) -> None:
        if self._pyramid is not None:
            self._pyramid.close()
            self._pyramid = None
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


def _copy(source: BinaryIO, target: BinaryIO) -> None:
    """Append all of ``source`` to ``target``, inside the kernel where it can."""
    target.flush()
    size, done = os.fstat(source.fileno()).st_size, 0
    try:
        while done < size:
            sent = os.copy_file_range(source.fileno(), target.fileno(), size - done)
            if sent == 0:
                break
            done += sent
    except OSError:  # not supported between these files: copy through user space
        pass
    target.seek(0, os.SEEK_END)
    source.seek(done)
    shutil.copyfileobj(source, target, 16 * 2**20)
