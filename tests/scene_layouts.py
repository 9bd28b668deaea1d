"""Helpers of the scene tests: product names, a read window, raster writing and linking."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

L1C = "S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"
L2A = "S2B_MSIL2A_20200101T155619_N0213_R054_T18SVG_20200101T180112"
DATE = "T18SVG_20200101T155619"
WINDOW = Window(col_off=700, row_off=300, width=96, height=64)


def link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def write_raster(path: Path, data: np.ndarray, like: Path, **profile: object) -> Path:
    """Write ``data`` (band, h, w) as a GeoTIFF georeferenced like the file ``like``."""
    with rasterio.open(like) as ds:
        meta = {"crs": ds.crs, "transform": ds.transform}
    meta.update(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2])
    meta.update(dtype=data.dtype.name, **profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **meta) as dst:
            dst.write(data)
    return path


def read_band(path: Path, window: Window | None = None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1, window=window)


def ben_band(patch: Path, band: str) -> Path:
    return patch / f"{patch.name}_{band}.tif"


#: Patch size and scale of the ``tiled`` fixture (tests/datasets/conftest.py) and of the tiling
#: tests that compare with it.
P, SCALE = 64, 4
