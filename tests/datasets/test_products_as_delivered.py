"""Sentinel-2 as it is delivered today: baseline offsets, zipped products, bare dated folders.

The promise: the same surface gives the same stored value, whatever the processing baseline or
packaging; what was applied is recorded with each scene; what cannot be told safely is refused
with one line naming the parameter to set.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from data.s2_products.data import DARK_WATER, OFFSET, Products, write_raster

from datasets.errors import HarmonisationError, SceneReadError, TilingError
from datasets.patch_store import open_patch_store
from datasets.scenes import open_scene
from datasets.store_version import SceneEntry
from datasets.store_writer import PatchStoreWriter
from datasets.tiling import store_params, tile_scene
from datasets.tiling_params import TilingParams

PARAMS = TilingParams(patch_size=64, scale=4, masks={"source": "none"})


def _tile(scene: Path | str, tmp_path: Path, name: str, **options: object) -> tuple:
    store = str(tmp_path / f"{name}.zarr")
    params = PARAMS.model_copy(update=options) if options else PARAMS
    result = tile_scene(str(scene), store, params, backend="zarr")
    ds = open_patch_store(store)
    return result, ds


def test_same_surface_gives_the_same_stored_values(s2_products: Products, tmp_path: Path) -> None:
    """A 2020 product and its 2023 re-encodings (offset +1000: folder, zip, bare files with the
    parameter) store byte-identical patches. Fails if the offset is ignored (every value
    1000 higher) or applied to the 2020 product."""
    _, reference = _tile(s2_products.pre2022_l1c, tmp_path, "pre")
    assert reference.sizes["patch"] == 16
    variants = {
        "safe": (s2_products.l1c_2023, {}),
        "zip": (s2_products.l1c_2023_zip, {}),
        "bare": (s2_products.bare_2023, {"harmonisation": {"offset": -1000}}),
    }
    for name, (scene, options) in variants.items():
        params = TilingParams.build(**{**PARAMS.model_dump(), **options})
        _, ds = _tile(scene, tmp_path, name, harmonisation=params.harmonisation)
        for array in ("hr", "lr"):
            got, want = ds[array].values, reference[array].values
            assert got.tobytes() == want.tobytes(), f"{name}: {array} differs"


def test_the_2023_product_reads_1000_above_without_harmonisation(s2_products: Products) -> None:
    with open_scene(s2_products.l1c_2023) as scene:
        raw, stored = scene.read_raw(), scene.read()
    valid = raw > 0
    assert np.array_equal(raw[valid].astype(int) - OFFSET, stored[valid].astype(int))


def test_each_scene_records_what_was_applied(s2_products: Products, tmp_path: Path) -> None:
    result, ds = _tile(s2_products.l2a_2023, tmp_path, "l2a")
    (entry,) = ds.attrs["scenes"]
    radiometry = entry["radiometry"]
    assert radiometry["source"] == "product-metadata"
    assert "MTD_MSIL2A.xml" in radiometry["detail"] and radiometry["baseline"] == "05.10"
    assert radiometry["offsets"] == {"B02": -1000.0, "B03": -1000.0, "B04": -1000.0, "B08": -1000}
    assert radiometry["quantification"] == 10000
    # the dark-water square (DN 500 in 4 bands) lies in one kept patch: clamped to 1, counted
    rows, cols = DARK_WATER
    expected = 4 * (rows.stop - rows.start) * (cols.stop - cols.start)
    assert radiometry["clamped_pixels"] == result.clamped_pixels == expected
    hr = ds["hr"].values
    index = np.flatnonzero((ds["row_off"].values == 128) & (ds["col_off"].values == 128))
    patch = hr[index[0]]
    assert np.all(
        patch[:, rows.start - 128 : rows.stop - 128, cols.start - 128 : cols.stop - 128] == 1
    )
    assert patch.min() >= 1


def test_a_zipped_product_has_the_id_of_the_unzipped_one(s2_products: Products) -> None:
    with open_scene(s2_products.l2a_2023) as folder, open_scene(s2_products.l2a_2023_zip) as zipped:
        assert zipped.scene_id == folder.scene_id
        assert zipped.uri.endswith(".SAFE.zip") and zipped.masks.keys() == {"scl"}
        assert np.array_equal(zipped.read(), folder.read())


def test_a_zip_is_read_in_place_not_extracted(
    s2_products: Products, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extracted: list[str] = []
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: extracted.append("x"))
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *a, **k: extracted.append("x"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    _tile(s2_products.l1c_2023_zip, tmp_path, "zip")
    assert extracted == [] and list((tmp_path / "tmp").iterdir()) == []


def test_a_bare_dated_folder_without_metadata_is_refused(s2_products: Products) -> None:
    with pytest.raises(HarmonisationError, match="harmonisation=") as caught:
        open_scene(s2_products.bare_2023)
    assert str(s2_products.bare_2023) in str(caught.value) and "2023-06-15" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_safe_metadata_missing_or_unreadable_is_refused(
    s2_products: Products, tmp_path: Path, problem: str
) -> None:
    product = Path(shutil.copytree(s2_products.l1c_2023, tmp_path / s2_products.l1c_2023.name))
    metadata = product / "MTD_MSIL1C.xml"
    if problem == "missing":
        metadata.unlink()
    else:
        metadata.write_text(metadata.read_text()[:300])
    store = tmp_path / "s.zarr"
    with pytest.raises(HarmonisationError, match="harmonisation=") as caught:
        tile_scene(str(product), str(store), PARAMS)
    assert product.name in str(caught.value) and not store.exists()
    # stating the radiometry explicitly lets the user go on
    params = TilingParams.model_validate(
        {**PARAMS.model_dump(), "harmonisation": {"offset": -1000}}
    )
    assert tile_scene(str(product), str(store), params)


@pytest.mark.parametrize("count", [0, 2])
def test_a_zip_without_one_safe_product_is_refused(
    s2_products: Products, tmp_path: Path, count: int
) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(count):
            for path in sorted(s2_products.l1c_2023.rglob("*")):
                zf.write(path, f"P{i}.SAFE/" + path.relative_to(s2_products.l1c_2023).as_posix())
        zf.writestr("readme.txt", "hello")
    with pytest.raises(SceneReadError, match=f"holds {count} .SAFE products") as caught:
        open_scene(archive)
    assert str(archive) in str(caught.value)


def test_a_truncated_zip_is_refused(s2_products: Products, tmp_path: Path) -> None:
    broken = tmp_path / "broken.SAFE.zip"
    broken.write_bytes(s2_products.l1c_2023_zip.read_bytes()[:5000])
    with pytest.raises(SceneReadError, match="not a readable zip"):
        open_scene(broken)


def test_8_bit_input_is_refused_unless_a_scale_is_given(
    s2_products: Products, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(s2_products.bare_2023 / f"T18SVG_20230615T155619_{band}.tif") as src:
            data = (src.read() // 64).clip(0, 255).astype(np.uint8)
            profile = {"crs": src.crs, "transform": src.transform}
        write_raster(folder / f"{band}.tif", data, profile)
    with pytest.raises(HarmonisationError, match="8-bit") as caught:
        tile_scene(str(folder), str(tmp_path / "a.zarr"), PARAMS)
    assert "harmonisation={'quantification': 255}" in str(caught.value)
    params = TilingParams.build(**{**PARAMS.model_dump(), "harmonisation": {"quantification": 255}})
    result = tile_scene(str(folder), str(tmp_path / "b.zarr"), params)
    assert result.patches_kept > 0 and result.harmonisation["quantification"] == 255


def _legacy_store(tmp_path: Path, scene_id: str) -> str:
    """A store holding one scene entry written without a radiometry record (as before)."""
    store = str(tmp_path / "legacy.zarr")
    writer = PatchStoreWriter(store, store_params(PARAMS), backend="zarr")
    patch = np.ones((1, 4, 64, 64), dtype=np.uint16)
    from datasets.store_layout import PatchBatch

    batch = PatchBatch(
        hr=patch,
        lr=np.ones((1, 4, 16, 16), dtype=np.uint16),
        row_off=np.zeros(1, dtype=np.int64),
        col_off=np.zeros(1, dtype=np.int64),
        split=np.array(["train"]),
        transform=np.zeros((1, 6)),
    )
    writer.append_scene(scene_id, "EPSG:32618", [batch], source=f"/old/{scene_id}")
    (entry,) = writer.committed().scenes
    assert isinstance(entry, SceneEntry) and entry.radiometry is None
    return store


def test_a_legacy_store_with_a_2023_scene_refuses_new_scenes(
    s2_products: Products, tmp_path: Path
) -> None:
    store = _legacy_store(tmp_path, "S2A_MSIL1C_20230101T100031_N0509_R122_T33UUP_20230101T1")
    with pytest.raises(TilingError, match="two radiometries"):
        tile_scene(str(s2_products.l1c_2023), store, PARAMS)


def test_a_legacy_store_of_older_scenes_takes_new_ones(
    s2_products: Products, tmp_path: Path
) -> None:
    store = _legacy_store(tmp_path, "S2A_MSIL1C_20200101T100031_N0208_R122_T33UUP_20200101T1")
    assert tile_scene(str(s2_products.l1c_2023), store, PARAMS).patches_kept == 16
    ds = open_patch_store(store)
    assert np.isnan(ds["clear_fraction"].values[0])  # the legacy patch's value is unknown


def test_8_bit_input_is_refused_by_super_resolve(
    s2_products: Products, tiny_checkpoint: str, tmp_path: Path
) -> None:
    from srgan.super_resolve_scene import super_resolve_scene

    folder = tmp_path / "export"
    for band in ("B02", "B03", "B04", "B08"):
        with rasterio.open(s2_products.bare_2023 / f"T18SVG_20230615T155619_{band}.tif") as src:
            data = (src.read() // 64).clip(0, 255).astype(np.uint8)
            write_raster(folder / f"{band}.tif", data, {"crs": src.crs, "transform": src.transform})
    out = tmp_path / "sr.tif"
    with pytest.raises(HarmonisationError, match="8-bit"):
        super_resolve_scene(folder, tiny_checkpoint, out)
    assert not out.exists()
