"""Inference: weights-only loading (EMA by default), tile layout, blending windows, streaming."""

from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srgan.checkpointing import CheckpointError, load_checkpoint
from srgan.inference import load_inference_model, pick_device
from srgan.tiled import WEIGHT_FLOOR, TiledSuperResolver, axis_windows, tile_starts


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoint: str) -> str:
    return tiny_checkpoint


def nearest(tiles: torch.Tensor) -> torch.Tensor:
    return F.interpolate(tiles, scale_factor=4, mode="nearest")


@pytest.mark.parametrize(("length", "tile", "overlap"), [(10, 32, 8), (100, 32, 8), (65, 32, 16)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in pairwise(starts))
    assert all(b > a for a, b in pairwise(starts))


def test_windows_sum_to_one_stay_positive_and_keep_border_pixels():
    length, tile, scale = 100, 32, 4
    starts = tile_starts(length, tile, 8)
    windows = axis_windows(length, tile, starts, scale)
    total = torch.zeros(length * scale)
    for start, w in zip(starts, windows, strict=True):
        assert (w >= WEIGHT_FLOOR**2 / 2).all()
        total[start * scale : (start + tile) * scale] += w
    torch.testing.assert_close(total, torch.ones_like(total))
    # the image border has no neighbour: its pixels keep the full weight of their only tile
    assert windows[0][0] == pytest.approx(1.0) and windows[-1][-1] == pytest.approx(1.0)
    # the ramp spans the middle half of the 8 px (32 HR px) overlap: sin² over 16 HR px rises by
    # at most π/2 / 16 ≈ 0.098 per pixel, no hard step
    assert windows[0].diff().abs().max() < 0.1


@pytest.mark.parametrize("shape", [(45, 70), (10, 12), (16, 40)])
def test_tiled_result_of_a_pointwise_predictor_equals_the_untiled_one(shape):
    lr = torch.rand(3, *shape)
    tiled = TiledSuperResolver(nearest, scale=4, tile_size=16, overlap=8, batch_size=3).run(lr)
    torch.testing.assert_close(tiled, nearest(lr[None])[0])


def test_stream_reads_each_row_range_once_top_to_bottom_and_yields_contiguous_blocks():
    """Blocks tile the image: rows top to bottom, each row's columns left to right, the last
    block of a row at the right edge; every block is a batch of tiles (or less) wide."""
    lr = torch.rand(2, 50, 45)
    reads = []

    def read(row, n):
        reads.append((row, n))
        return lr[:, row : row + n]

    tiler = TiledSuperResolver(nearest, scale=4, tile_size=16, overlap=4, batch_size=2)
    blocks = [
        (b.lr_row_off, b.lr_rows, b.lr_col_off, b.lr_cols, b.ends_row, b.pixels.shape)
        for b in tiler.stream(read, 50, 45)
    ]
    assert [r for r, _ in reads] == sorted({r for r, _ in reads})
    strips = [b for b in blocks if b[2] == 0]
    assert strips[0][0] == 0 and sum(b[1] for b in strips) == 50
    assert all(a[0] + a[1] == b[0] for a, b in pairwise(strips))
    for a, b in pairwise(blocks):
        if a[4]:  # the row is complete: the next block starts the rows below at column 0
            assert (b[0], b[2]) == (a[0] + a[1], 0)
        else:
            assert (b[0], b[1], b[2]) == (a[0], a[1], a[2] + a[3])
    assert all(b[4] == (b[2] + b[3] == 45) for b in blocks) and blocks[-1][4]
    assert all(b[5] == (2, b[1] * 4, b[3] * 4) and 0 < b[3] <= 2 * 16 for b in blocks)
    assert len(blocks) > len(strips) > 1
    assert tiler.timings.tiles == len(reads) * len(tile_starts(45, 16, 4))


def test_predictor_with_the_wrong_scale_is_refused():
    tiler = TiledSuperResolver(nearest, scale=2, tile_size=16, overlap=4)
    with pytest.raises(ValueError, match="scale really 2"):
        tiler.run(torch.rand(1, 20, 20))


@pytest.mark.parametrize(
    ("tile", "overlap", "batch", "match"),
    [(4, 0, 1, "tile_size"), (32, 17, 1, "overlap"), (32, 8, 0, "batch_size")],
)
def test_bad_tiling_parameters_are_refused(tile, overlap, batch, match):
    with pytest.raises(ValueError, match=match):
        TiledSuperResolver(nearest, 4, tile, overlap, batch)


def test_checkpoint_loads_ema_weights_by_default_with_its_config(checkpoint):
    ema = load_inference_model(checkpoint)
    raw = load_inference_model(checkpoint, use_ema=False)
    assert (ema.weights, raw.weights) == ("ema", "generator")
    assert ema.bands == ("B02", "B03", "B04", "B08") and ema.scale == 4
    assert ema.device == torch.device("cpu") and not ema.generator.training
    x = torch.rand(2, 4, 8, 8)
    out = ema.predict(x)
    assert out.shape == (2, 4, 32, 32) and out.dtype == torch.float32
    assert not torch.allclose(out, raw.predict(x))
    state = load_checkpoint(checkpoint)["state_dict"]
    first = next(k for k in state if k.startswith("ema.averaged.module."))
    own = dict(ema.generator.state_dict())[first.removeprefix("ema.averaged.module.")]
    torch.testing.assert_close(own, state[first])


def test_corrupted_checkpoint_is_refused(checkpoint, tmp_path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(Path(checkpoint).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="damaged"):
        load_inference_model(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_inference_model(tmp_path / "missing.ckpt")


def _bytes_read(action) -> int:
    """Bytes this process read through read() calls while ``action`` ran (Linux)."""

    def rchar() -> int:
        io = Path("/proc/self/io").read_text().split()
        return int(io[io.index("rchar:") + 1])

    before = rchar()
    action()
    return rchar() - before


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_inference_maps_the_checkpoint_and_reads_only_what_it_uses(checkpoint, tmp_path):
    # a real run's checkpoint is mostly the discriminator and the optimisers' state (the 10 m
    # preset's: 107 MB, of which its generator is 10): inference maps the file, so only the
    # generator's weights and the archive's index are read
    loaded = load_checkpoint(checkpoint)
    loaded["optimizer_states"].append({"state": {0: {"exp_avg": torch.rand(2**20)}}})
    path = tmp_path / "large.ckpt"
    torch.save(loaded, path)
    size = path.stat().st_size
    assert _bytes_read(lambda: load_checkpoint(path)) >= size  # the measure sees reads
    assert _bytes_read(lambda: load_inference_model(path, precision="float32")) < size / 4


def test_a_mapped_load_holds_what_a_read_one_holds_and_old_formats_still_load(checkpoint, tmp_path):
    read, mapped = load_checkpoint(checkpoint), load_checkpoint(checkpoint, mapped=True)
    assert read.keys() == mapped.keys() and read["state_dict"].keys() == mapped["state_dict"].keys()
    for name, tensor in read["state_dict"].items():
        torch.testing.assert_close(mapped["state_dict"][name], tensor, rtol=0, atol=0)
    # torch's pre-1.6 format cannot be mapped: it is read as before
    legacy = tmp_path / "legacy.ckpt"
    torch.save(read, legacy, _use_new_zipfile_serialization=False)
    assert load_inference_model(legacy, precision="float32").weights == "ema"


def test_checkpoint_without_config_or_with_mismatched_weights_is_refused(checkpoint, tmp_path):
    loaded = load_checkpoint(checkpoint)
    no_config = tmp_path / "no-config.ckpt"
    torch.save({"state_dict": loaded["state_dict"]}, no_config)
    with pytest.raises(CheckpointError, match="no training config"):
        load_inference_model(no_config)
    loaded["hyper_parameters"]["config"]["generator"]["channels"] = 16
    wrong = tmp_path / "wrong.ckpt"
    torch.save(loaded, wrong)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_inference_model(wrong)


def test_asking_for_a_missing_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    assert pick_device(None) == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_inference_in_bf16_matches_the_cpu(checkpoint):
    cpu = load_inference_model(checkpoint, device="cpu")
    gpu = load_inference_model(checkpoint, device="cuda")
    x = torch.rand(2, 4, 16, 16)
    out = gpu.predict(x)
    assert out.is_cuda and out.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: about 0.4 % relative error per op, a few ops deep
    torch.testing.assert_close(out.cpu(), cpu.predict(x), atol=0.03, rtol=0.03)
