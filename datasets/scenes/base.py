"""``Scene``: the selected bands of one Sentinel-2 scene, on one grid, read window by window."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from datasets.errors import HarmonisationError, MaskError, SceneFetchError, SceneReadError
from datasets.harmonise import Harmonisation
from datasets.scenes.grid import Grid, resampling_method, target_grid
from datasets.scenes.storage import SceneStore, fetch_failed, gdal_message, looks_unavailable


@dataclass(frozen=True)
class BandSource:
    """Where one band's pixels live: a raster file and the 1-based band index inside it."""

    band: str
    uri: str
    index: int = 1


class Scene:
    """Selected bands of one scene sharing one grid (CRS, transform, shape).

    Created by :func:`datasets.scenes.open_scene`; holds its files open until :meth:`close`
    (use it as a context manager). :meth:`read` returns harmonised reflectance ×10000 (see
    :mod:`datasets.harmonise`): for a product of baseline 04.00 or later, the declared offset
    is already applied. Bands whose native grid differs from the scene grid are
    resampled on the fly through a GDAL warped VRT, so windowed reads stay windowed; where
    such a band's file does not cover the grid, it reads as nodata (0 if none is declared).
    Not thread-safe and not picklable: give each thread or worker its own ``Scene`` (pass URIs
    between processes).

    Attributes:
        uri: What was opened (folder, ``.SAFE`` product, multi-band file; local or ``s3://``).
        scene_id: Stable, filesystem-safe identifier (product, file or folder name; see
            :func:`~datasets.scenes.open_scene`).
        bands: Band names in the order :meth:`read` returns them.
        sources: The file (and band index) each band is read from, in ``bands`` order.
        crs: Coordinate reference system of the grid.
        transform: Affine transform from (col, row) pixel corners to CRS coordinates.
        width: Grid width in pixels.
        height: Grid height in pixels.
        dtype: Pixel dtype of :meth:`read`: uint16 when an offset or quantification is applied,
            else the files' integer dtype (usually uint16 ×10000).
        nodata: Nodata value of :meth:`read`: 0 when harmonised, else the files' nodata value
            (``None`` when they declare none; Sentinel-2 then uses 0).
        harmonisation: How digital numbers become reflectance ×10000, and why.
        masks: Cloud masks the product carries (``"scl"``, ``"classi"`` → raster URI).
        resolution: Pixel size in CRS units (metres for UTM).

    Example::

        with open_scene("S2A_MSIL2A_...SAFE", ("B02", "B03", "B04", "B08")) as scene:
            tile = scene.read(Window(0, 0, 256, 256))  # (4, 256, 256) uint16
    """

    def __init__(
        self,
        uri: str,
        scene_id: str,
        sources: Sequence[BandSource],
        store: SceneStore,
        *,
        resolution: float | None = None,
        resampling: str | None = None,
        harmonisation: Harmonisation | None = None,
        masks: Mapping[str, str] | None = None,
        grid_claims: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> None:
        self.uri = uri
        self.scene_id = scene_id
        self.sources = tuple(sources)
        self.bands = tuple(source.band for source in self.sources)
        self.harmonisation = harmonisation or Harmonisation("undated", "stored as read")
        self.masks = dict(masks or {})
        self._claims = dict(grid_claims or {})
        self._store = store
        self._datasets: dict[str, DatasetReader] = {}
        self._readers: list[DatasetReader | WarpedVRT] = []
        self._readers_extra: list[WarpedVRT] = []
        try:
            self._open(resolution, resampling)
        except BaseException:
            self.close()
            raise

    def _open(self, resolution: float | None, resampling: str | None) -> None:
        grids: dict[str, Grid] = {}
        dtypes: dict[str, np.dtype] = {}
        nodatas: dict[str, float | None] = {}
        for source in self.sources:
            dataset = self._dataset(source.uri)
            if source.index > dataset.count:
                raise SceneReadError(
                    f"{source.uri} has {dataset.count} band(s); {source.band} was expected at "
                    f"band index {source.index}."
                )
            self._probe(source, dataset)
            if dataset.crs is None:
                raise SceneReadError(
                    f"{source.uri} ({source.band}) has no CRS, so patches cannot be "
                    "georeferenced; assign one (e.g. `gdal_edit.py -a_srs EPSG:32633 FILE`)."
                )
            dtype = np.dtype(dataset.dtypes[source.index - 1])
            if not np.issubdtype(dtype, np.integer):
                raise SceneReadError(
                    f"{source.uri} ({source.band}) holds {dtype} pixels; scenes must hold "
                    "integer reflectance ×10000 (uint16 as distributed by ESA) because a float "
                    "file may be scaled to [0, 1] and would be silently mis-scaled. Convert it "
                    "to uint16 ×10000 first."
                )
            grids[source.band] = Grid.of(dataset)
            self._check_claim(source, grids[source.band])
            dtypes[source.band] = dtype
            nodatas[source.band] = dataset.nodatavals[source.index - 1]
        if len(set(dtypes.values())) > 1:
            listing = ", ".join(f"{band} {dtype}" for band, dtype in dtypes.items())
            raise SceneReadError(
                f"Bands of {self.uri} have different dtypes ({listing}); convert them to one "
                "integer type (uint16 ×10000)."
            )
        if len({repr(value) for value in nodatas.values()}) > 1:  # repr: nan equals nan
            listing = ", ".join(f"{band} {value}" for band, value in nodatas.items())
            raise SceneReadError(
                f"Bands of {self.uri} declare different nodata values ({listing}); set one "
                "nodata value on all band files."
            )
        grid = target_grid(grids, self.uri, resolution, resampling)
        for source in self.sources:
            dataset = self._datasets[source.uri]
            if grids[source.band].matches(grid):
                self._readers.append(dataset)
                continue
            assert resampling is not None  # target_grid refuses mismatched grids otherwise
            with self._store.env():
                self._readers.append(
                    WarpedVRT(
                        dataset,
                        crs=grid.crs,
                        transform=grid.transform,
                        width=grid.width,
                        height=grid.height,
                        resampling=resampling_method(resampling),
                    )
                )
        self.crs: CRS = grid.crs
        self.transform: Affine = grid.transform
        self.width: int = grid.width
        self.height: int = grid.height
        self.resolution: float = grid.resolution
        raw_dtype: np.dtype = next(iter(dtypes.values()))
        self._raw_dtype = raw_dtype
        self._raw_nodata: float | None = next(iter(nodatas.values()))
        if raw_dtype == np.uint8 and self.harmonisation.source != "parameter":
            raise HarmonisationError(
                f"{self.uri} holds 8-bit pixels, which cannot be reflectance ×10000 (a uint8 "
                "export is usually stretched for display). If its values are reflectance, pass "
                "harmonisation={'quantification': 255} (or the value meaning reflectance 1); "
                "otherwise use the product's 16-bit bands."
            )
        self.harmonised = not self.harmonisation.is_identity(self.bands)
        self.dtype: np.dtype = np.dtype(np.uint16) if self.harmonised else raw_dtype
        self.nodata: float | None = 0.0 if self.harmonised else self._raw_nodata

    def aligned(self, uri: str, what: str) -> WarpedVRT:
        """Another raster of the product (a cloud mask) on this scene's grid, nearest-resampled,
        read window by window like the bands; the caller closes it.

        Args:
            uri: The raster, in the scene's store (``Scene.masks`` values).
            what: How to name it in messages (e.g. ``"SCL"``).

        Raises:
            MaskError: It has no CRS, or does not cover the scene's extent.
        """
        dataset = self._dataset(uri)
        if dataset.crs is None:
            raise MaskError(f"{what} {uri} has no CRS, so it cannot be put on the scene's grid.")
        with self._store.env():
            vrt = WarpedVRT(
                dataset,
                crs=self.crs,
                transform=self.transform,
                width=self.width,
                height=self.height,
                resampling=resampling_method("nearest"),
            )
        mine = Grid(self.crs, self.transform, self.width, self.height)
        theirs = Grid.of(dataset)
        if not theirs.covers(mine):
            vrt.close()
            raise MaskError(
                f"{what} {uri} does not cover scene {self.scene_id} ({theirs.describe()} against "
                f"the scene's {mine.describe()}); use the product's own {what}, or tile with "
                "masks={'source': 'none'} to ignore the mask."
            )
        self._readers_extra.append(vrt)
        return vrt

    def _check_claim(self, source: BandSource, grid: Grid) -> None:
        """Refuse a band whose file lies on another grid than its description claims."""
        if source.band not in self._claims:
            return
        shape, coefficients = self._claims[source.band]
        claimed = Affine(*[float(c) for c in list(coefficients)[:6]])
        if tuple(shape) != (grid.height, grid.width) or not claimed.almost_equals(grid.transform):
            raise SceneReadError(
                f"{source.uri} ({source.band}) lies on a {grid.width}×{grid.height} grid with "
                f"transform {tuple(grid.transform)[:6]}, but {self.uri} claims "
                f"{list(shape)[::-1]} px with {tuple(claimed)[:6]}; the Item's proj:shape / "
                "proj:transform do not describe its assets: fix the Item or report it to its "
                "catalogue."
            )

    def _dataset(self, uri: str) -> DatasetReader:
        if uri not in self._datasets:
            self._datasets[uri] = self._store.open_raster(uri)
        return self._datasets[uri]

    def _probe(self, source: BandSource, dataset: DatasetReader) -> None:
        """Read the last pixel, so a truncated file fails here rather than mid-way through
        tiling (its header alone often still parses)."""
        last = Window(dataset.width - 1, dataset.height - 1, 1, 1)
        try:
            with self._store.env():
                dataset.read(source.index, window=last)
        except RasterioError as err:
            if self._store.remote and looks_unavailable(err):
                raise fetch_failed(
                    f"Probing {source.uri} ({source.band})", gdal_message(err)
                ) from err
            raise SceneReadError(
                f"{source.uri} ({source.band}) is truncated or corrupt: "
                f"{gdal_message(err)}. Re-download or re-export it."
            ) from err

    def _check_window(self, window: Window | None) -> Window:
        if window is None:
            return Window(0, 0, self.width, self.height)
        values = (window.col_off, window.row_off, window.width, window.height)
        col, row, width, height = (int(v) for v in values)
        if (
            any(v != int(v) for v in values)
            or width < 1
            or height < 1
            or col < 0
            or row < 0
            or col + width > self.width
            or row + height > self.height
        ):
            raise ValueError(
                f"{window} is not a non-empty whole-pixel window inside the "
                f"{self.width}×{self.height} grid of {self.uri}."
            )
        return Window(col, row, width, height)

    def read(self, window: Window | None = None) -> np.ndarray:
        """Read the selected bands as harmonised reflectance ×10000, whole or in a window.

        Only the pixels (blocks) under ``window`` are fetched, also for resampled bands.

        Args:
            window: Whole-pixel window inside ``(0, 0, width, height)``; ``None`` reads all.

        Returns:
            Array of shape ``(len(bands), window.height, window.width)`` and dtype
            :attr:`dtype` (uint16 reflectance ×10000 for Sentinel-2 products).

        Raises:
            As :meth:`read_raw`.
        """
        values, _ = self.harmonisation.apply(self.read_raw(window), self.bands, self._raw_nodata)
        return values

    def count_clamped(self, raw: np.ndarray) -> int:
        """How many values of ``raw`` (digital numbers from :meth:`read_raw`) harmonise to zero
        or negative reflectance, and so are stored clamped to 1."""
        return self.harmonisation.count_clamped(raw, self.bands, self._raw_nodata)

    def harmonise(self, raw: np.ndarray) -> np.ndarray:
        """Harmonise digital numbers read with :meth:`read_raw` (what :meth:`read` returns)."""
        return self.harmonisation.apply(raw, self.bands, self._raw_nodata)[0]

    def read_raw(self, window: Window | None = None) -> np.ndarray:
        """Read the selected bands' digital numbers as the files hold them.

        Args:
            window: Whole-pixel window inside ``(0, 0, width, height)``; ``None`` reads all.

        Returns:
            Array of shape ``(len(bands), window.height, window.width)`` in the files' dtype.

        Raises:
            ValueError: ``window`` is fractional, empty or outside the grid.
            SceneReadError: A local file cannot be decoded (truncated or corrupt);
                :class:`~datasets.errors.SceneFetchError` when reading an ``s3://`` file fails
                (run again).
        """
        if not self._readers:
            raise SceneReadError(f"Scene {self.scene_id} is closed; open it again to read.")
        win = self._check_window(window)
        out = np.empty((len(self.bands), win.height, win.width), dtype=self._raw_dtype)
        with self._store.env():
            for i, (source, reader) in enumerate(zip(self.sources, self._readers, strict=True)):
                try:
                    reader.read(source.index, window=win, out=out[i])
                except RasterioError as err:
                    if self._store.remote:
                        # GDAL reports a failed range request as a short read, like truncation;
                        # but _probe read this file's last block, so blame the network.
                        raise SceneFetchError(
                            f"Reading {source.band} from {source.uri} failed: "
                            f"{gdal_message(err)}. The file opened and its last block read, so "
                            "the network or the S3 server is the likely cause; run again (the "
                            "tile-sentinel2 flow retries by itself). If it keeps failing, the "
                            "object may be corrupt: re-upload it."
                        ) from err
                    raise SceneReadError(
                        f"Reading {source.band} from {source.uri} failed: "
                        f"{gdal_message(err)}. The file is probably truncated or corrupt; "
                        "re-download or re-export it."
                    ) from err
        return out

    def close(self) -> None:
        """Close the scene's files; further reads raise :class:`SceneReadError`."""
        for reader in [*self._readers, *self._readers_extra]:
            if isinstance(reader, WarpedVRT):
                reader.close()
        self._readers_extra = []
        for dataset in self._datasets.values():
            dataset.close()
        self._readers = []
        self._datasets = {}

    def __enter__(self) -> Scene:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        shape = f"{self.width}×{self.height}" if hasattr(self, "width") else "unopened"
        return (
            f"Scene({self.scene_id!r}, bands={self.bands}, {shape} px, uri={os.fspath(self.uri)!r})"
        )
