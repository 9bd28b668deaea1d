"""Cloud masks on real pixels with a known SCL (L2A) and MSK_CLASSI_B00 (L1C).

The expected drops are computed here from the mask arrays the test data wrote
(``tests/data/s2_products/data.py``), independently of the tiling code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from data.s2_products.data import Products, classi_grid, scl_grid, write_raster

from datasets.errors import MaskError
from datasets.patch_store import open_patch_store
from datasets.scenes import open_scene
from datasets.tiling import tile_scene
from datasets.tiling_params import MaskPolicy, TilingParams

P = 64
DEFAULT_CLASSES = (0, 1, 3, 8, 9, 10)


def _masked_fractions(masked_10m: np.ndarray) -> dict[tuple[int, int], float]:
    """(row_off, col_off) → masked fraction of each 64 px patch of the 256² crop."""
    return {
        (r, c): float(masked_10m[r : r + P, c : c + P].mean())
        for r in range(0, 256, P)
        for c in range(0, 256, P)
    }


def _scl_masked(classes: tuple[int, ...]) -> np.ndarray:
    return np.isin(scl_grid(), classes).repeat(2, axis=0).repeat(2, axis=1)


def _copied(product: Path, tmp_path: Path, pattern: str) -> tuple[Path, Path]:
    """A copy of ``product`` to break, and its one file matching ``pattern``."""
    copy = Path(shutil.copytree(product, tmp_path / product.name))
    (found,) = copy.rglob(pattern)
    return copy, found


def _offsets(ds: object) -> list[tuple[int, int]]:
    rows, cols = ds["row_off"].values.tolist(), ds["col_off"].values.tolist()  # type: ignore[index]
    return list(zip(rows, cols, strict=True))


def _tile(scene: Path, tmp_path: Path, masks: MaskPolicy) -> tuple:
    store = str(tmp_path / "s.zarr")
    result = tile_scene(str(scene), store, TilingParams(patch_size=P, scale=4, masks=masks))
    return result, open_patch_store(store)


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.2])
def test_no_kept_patch_over_scl_clouds_beyond_the_threshold(
    s2_products: Products, tmp_path: Path, threshold: float
) -> None:
    """Fails if the SCL is ignored, read on the wrong grid, or its classes misread."""
    result, ds = _tile(s2_products.l2a_2023, tmp_path, MaskPolicy(max_masked_fraction=threshold))
    fractions = _masked_fractions(_scl_masked(DEFAULT_CLASSES))
    expected_kept = {key for key, f in fractions.items() if f <= threshold}
    kept = set(_offsets(ds))
    assert kept == expected_kept
    assert result.dropped_masked == 16 - len(expected_kept) > 0
    assert all(fractions[key] <= threshold for key in kept)
    clear = dict(zip(_offsets(ds), ds["clear_fraction"].values.tolist(), strict=True))
    for key, value in clear.items():
        assert value == pytest.approx(1 - fractions[key])
    (entry,) = ds.attrs["scenes"]
    assert (
        entry["masks"]["source"] == "scl"
        and entry["masks"]["dropped_patches"] == result.dropped_masked
    )
    assert entry["masks"]["classes"] == list(DEFAULT_CLASSES)
    assert entry["masks"]["max_masked_fraction"] == threshold
    assert entry["masks"]["uri"].endswith("_SCL_20m.jp2") and "layers" not in entry["masks"]


def test_classes_are_configurable(s2_products: Products, tmp_path: Path) -> None:
    """Snow masks a patch only when asked for (class 11)."""
    classes = (*DEFAULT_CLASSES, 11)
    result, ds = _tile(s2_products.l2a_2023, tmp_path, MaskPolicy(scl_classes=classes))
    fractions = _masked_fractions(_scl_masked(classes))
    assert result.dropped_masked == sum(f > 0.05 for f in fractions.values())
    assert (128, 192) not in _offsets(ds)  # the snow patch
    default, _ = _tile(s2_products.l2a_2023, tmp_path / "default", MaskPolicy())
    assert default.dropped_masked == result.dropped_masked - 1


def test_l1c_uses_msk_classi(s2_products: Products, tmp_path: Path) -> None:
    result, _ = _tile(s2_products.l1c_2023, tmp_path, MaskPolicy())
    layers = classi_grid()[[0, 1]].any(axis=0)  # opaque clouds and cirrus
    masked = layers.repeat(6, axis=0).repeat(6, axis=1)[:256, :256]
    fractions = _masked_fractions(masked)
    assert result.dropped_masked == sum(f > 0.05 for f in fractions.values()) > 0
    assert result.mask is not None and result.mask["source"] == "classi"
    assert result.mask["layers"] == list(MaskPolicy().classi_layers)
    assert result.mask["uri"].endswith("MSK_CLASSI_B00.jp2") and "classes" not in result.mask
    assert result.mask["max_masked_fraction"] == MaskPolicy().max_masked_fraction


@pytest.mark.parametrize("layer", ["opaque", "cirrus"])
def test_only_the_chosen_classi_layers_mask(
    s2_products: Products, tmp_path: Path, layer: str
) -> None:
    """One layer asked for: the other layer's clouds keep their patches."""
    result, _ = _tile(s2_products.l1c_2023, tmp_path, MaskPolicy(classi_layers=(layer,)))
    index = ["opaque", "cirrus"].index(layer)
    masked = classi_grid()[index].astype(bool).repeat(6, axis=0).repeat(6, axis=1)[:256, :256]
    expected = sum(f > 0.05 for f in _masked_fractions(masked).values())
    assert result.dropped_masked == expected > 0
    assert result.mask is not None and result.mask["layers"] == [layer]


def test_a_product_without_masks_keeps_every_patch(s2_products: Products, tmp_path: Path) -> None:
    result, ds = _tile(s2_products.pre2022_l1c, tmp_path, MaskPolicy())
    assert result.patches_kept == 16 and result.mask is not None
    assert result.mask["source"] == "none" and np.isnan(ds["clear_fraction"].values).all()


def test_asking_for_a_mask_the_product_lacks_is_refused(
    s2_products: Products, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    with pytest.raises(MaskError) as caught:
        tile_scene(str(s2_products.l1c_2023), str(store), TilingParams(masks={"source": "scl"}))
    assert str(caught.value) == (
        f"masks.source='scl' asks for the SCL of {s2_products.l1c_2023}, which it does not "
        "carry (masks found: MSK_CLASSI_B00); use masks.source='auto' or 'none'."
    )
    with pytest.raises(MaskError, match=r"\(masks found: none\); use masks.source='auto'"):
        tile_scene(str(s2_products.pre2022_l1c), str(store), TilingParams(masks={"source": "scl"}))
    assert not store.exists()


def test_a_msk_classi_without_its_three_layers_is_refused(
    s2_products: Products, tmp_path: Path
) -> None:
    product, classi = _copied(s2_products.l1c_2023, tmp_path, "MSK_CLASSI_B00.jp2")
    with open_scene(product) as scene:
        profile = {"crs": scene.crs, "transform": scene.transform * scene.transform.scale(6)}
    write_raster(classi, classi_grid()[:2], profile, jp2=True)
    with pytest.raises(MaskError) as caught:
        tile_scene(str(product), str(tmp_path / "s.zarr"), TilingParams(patch_size=P, scale=4))
    assert str(caught.value) == (
        f"MSK_CLASSI_B00 {classi} has 2 band(s), not the 3 layers (opaque, cirrus, snow) of "
        "baseline 04.00; tile with masks={'source': 'none'} to ignore it."
    )


def test_a_mask_that_cannot_be_decoded_is_refused(s2_products: Products, tmp_path: Path) -> None:
    product, scl = _copied(s2_products.l2a_2023, tmp_path, "*_SCL_20m.jp2")
    import rasterio

    with rasterio.open(scl) as src:
        profile = {"crs": src.crs, "transform": src.transform}
    write_raster(scl, scl_grid()[None], profile, cog=True)  # deflate tiles behind the header
    with rasterio.open(scl) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    data = bytearray(scl.read_bytes())
    data[offset : offset + 32] = b"\xff" * 32  # the header reads, the first tile does not
    scl.write_bytes(bytes(data))
    with pytest.raises(MaskError) as caught:
        tile_scene(str(product), str(tmp_path / "s.zarr"), TilingParams(patch_size=P, scale=4))
    message = str(caught.value)
    assert message.startswith(f"Reading {scl} failed: ")
    assert message.endswith("; re-download the product.")


def test_an_scl_that_does_not_cover_the_scene_is_refused(
    s2_products: Products, tmp_path: Path
) -> None:
    product, scl = _copied(s2_products.l2a_2023, tmp_path, "*_SCL_20m.jp2")
    with open_scene(product) as scene:
        profile = {
            "crs": scene.crs,
            "transform": scene.transform * __import__("affine").Affine.scale(2),
        }
    write_raster(scl, scl_grid()[None, :64, :64], profile, jp2=True)  # half the extent
    store = tmp_path / "s.zarr"
    with pytest.raises(MaskError, match="does not cover") as caught:
        tile_scene(str(product), str(store), TilingParams(patch_size=P, scale=4))
    assert str(caught.value).startswith(f"SCL {scl} does not cover scene ")
    assert "use the product's own SCL" in str(caught.value)
    assert "masks={'source': 'none'}" in str(caught.value) and not store.exists()
    none = TilingParams(patch_size=P, scale=4, masks={"source": "none"})
    assert tile_scene(str(product), str(store), none).patches_kept == 16


def test_the_zipped_product_masks_alike(s2_products: Products, tmp_path: Path) -> None:
    folder, _ = _tile(s2_products.l2a_2023, tmp_path / "a", MaskPolicy())
    zipped, _ = _tile(s2_products.l2a_2023_zip, tmp_path / "b", MaskPolicy())
    assert (zipped.patches_kept, zipped.dropped_masked) == (
        folder.patches_kept,
        folder.dropped_masked,
    )
