"""The overview averages and the TIFF predictor of the one-pass COG writer, against plain
per-pixel definitions (the whole-file comparison with GDAL's COG driver is in
``test_cog_writer.py``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from datasets import cog_levels
from datasets.cog_levels import Codec, Pyramid, halve, predict


def _block_means(rows: np.ndarray, nodata: float | None) -> np.ndarray:
    """2×2 means pixel block by pixel block: valid pixels only, rounded half up."""
    bands, n, width = rows.shape
    out = np.zeros((bands, n // 2, width // 2), rows.dtype)
    for b, i, j in itertools.product(range(bands), range(n // 2), range(width // 2)):
        block = [int(v) for v in rows[b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel()]
        valid = [v for v in block if nodata is None or v != nodata]
        out[b, i, j] = math.floor(sum(valid) / len(valid) + 0.5) if valid else (nodata or 0)
    return out


@pytest.mark.parametrize("nodata", [None, 0, 7, 65535])
def test_uint16_overviews_average_the_valid_pixels_rounding_half_up(nodata: int | None) -> None:
    """Every mix of valid and nodata pixels in a block (0 to 4 valid), sums that round up or
    down, values at both ends of uint16, and odd sizes (the last row and column left out).

    Broken by hand: ``(sum + 1) >> 2`` for whole blocks fails the rounding."""
    rng = np.random.default_rng(3)
    values = np.array([0, 1, 2, 3, 7, 8, 30001, 65534, 65535], np.uint16)
    rows = rng.choice(values, (2, 41, 67))
    fill = 0 if nodata is None else nodata
    for k, pattern in enumerate(itertools.product([False, True], repeat=4)):  # each gap pattern
        block = rows[0, 2:4, 2 * k : 2 * k + 2].reshape(-1)
        block[np.array(pattern)] = fill
        rows[0, 2:4, 2 * k : 2 * k + 2] = block.reshape(2, 2)
    rows[1, :20, :40] = rng.integers(0, 65536, (20, 40))
    assert np.array_equal(halve(rows, nodata), _block_means(rows, nodata))
    # a slice of a larger array, as the pyramid hands it on
    assert np.array_equal(halve(rows[:, 1:, 3:], nodata), _block_means(rows[:, 1:, 3:], nodata))


def test_float_overviews_leave_nan_out() -> None:
    """Means of the valid pixels of each block (not rounded); a block of nan only is nan."""
    rows = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    rows[0, 0, 0] = rows[1, 2:4, 2:4] = np.nan
    blocks = rows.reshape(2, 2, 2, 3, 2).transpose(0, 1, 3, 2, 4).reshape(2, 2, 3, 4)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty"):
        expected = np.nanmean(blocks, axis=-1)
    np.testing.assert_allclose(halve(rows, None), expected, rtol=1e-6)  # nan where expected is


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_the_predictor_interleaves_band_planar_tiles(dtype: str) -> None:
    """A tile handed over as a band-planar view gives the bytes of the pixel-interleaved tile;
    undoing the predictor (cumulative sums along each row) gives the pixels back."""
    rng = np.random.default_rng(4)
    planar = rng.integers(0, 65536, (3, 8, 16)).astype(dtype)
    view = planar.transpose(1, 2, 0)  # (rows, cols, bands), not contiguous
    interleaved = np.ascontiguousarray(view)
    assert predict(view).tobytes() == predict(interleaved).tobytes()
    if dtype == "uint16":
        restored = np.cumsum(predict(view).astype(np.uint64), axis=1) % 2**16
        assert np.array_equal(restored.astype(np.uint16), interleaved)
    else:  # byte planes, most significant first, differenced with a stride of one pixel
        flat = predict(view).astype(np.int64).reshape(8, -1)
        for band in range(3):
            flat[:, band::3] = np.cumsum(flat[:, band::3], axis=1) % 256
        planes = flat.astype(np.uint8).reshape(8, 4, 16 * 3).transpose(0, 2, 1)[:, :, ::-1]
        assert np.array_equal(np.ascontiguousarray(planes).view("<f4").reshape(8, 16, 3), view)


def test_a_full_tile_row_is_compressed_before_add_returns(tmp_path) -> None:
    """Compression runs while the caller waits, never beside its next work (the generator's
    and the QA's threads), and each level reuses one row buffer."""
    width, bands = 1200, 2
    pyramid = Pyramid(width, 1100, bands, "uint16", 0, Codec("zstd", 1), tmp_path, 2)
    try:
        buffers = [level.buffer for level in pyramid.levels]
        rows = np.arange(bands * 600 * width, dtype=np.uint16).reshape(bands, 600, width)
        pyramid.add(rows)  # completes the first tile row of the full resolution only
        level = pyramid.levels[0]
        assert level.byte_counts and len(level.byte_counts) == level.columns
        assert not any(lvl.pending for lvl in pyramid.levels)
        pyramid.add(rows[:, :500])  # completes every level
        assert all(lvl.buffer is buf for lvl, buf in zip(pyramid.levels, buffers, strict=True))
        assert not any(lvl.pending for lvl in pyramid.levels)
        tiles = [math.ceil(lvl.width / 512) * math.ceil(lvl.height / 512) for lvl in pyramid.levels]
        assert [len(lvl.byte_counts) for lvl in pyramid.levels] == tiles == [9, 4, 1]
    finally:
        pyramid.close()


def _decoded_tiles(data: bytes, byte_counts: list[int], bands: int) -> list[np.ndarray]:
    """A level's zstd tiles, decompressed, predictor 2 undone: ``(512, 512, bands)`` each."""
    from numcodecs import Zstd

    offsets = np.cumsum([0, *byte_counts])
    tiles = [
        np.frombuffer(Zstd().decode(data[a:b]), "<u2").reshape(512, 512, bands)
        for a, b in itertools.pairwise(offsets)
    ]
    # undo the horizontal differencing of predictor 2 (modulo 2^16)
    return [(np.cumsum(t.astype(np.uint64), axis=1) % 65536).astype(np.uint16) for t in tiles]


def test_edge_tiles_are_padded_with_zeros_whatever_the_buffer_held(tmp_path) -> None:
    """The right and bottom tiles' padding is written as zeros (as GDAL writes it), never as
    whatever memory the level's buffer got."""
    width, height, bands = 1200, 600, 2
    pyramid = Pyramid(width, height, bands, "uint16", 0, Codec("zstd", 1), tmp_path, 2)
    try:
        for level in pyramid.levels:
            level.buffer.fill(0xABCD)  # stands in for reused memory
        rows = np.arange(1, bands * height * width + 1, dtype=np.uint64) % 60000 + 1
        pyramid.add(rows.astype(np.uint16).reshape(bands, height, width))
        pyramid.finish(predictor=2)
        level0 = pyramid.levels[0]
        data = level0.path.read_bytes()
    finally:
        pyramid.close()
    tiles = _decoded_tiles(data, level0.byte_counts, bands)
    right = width - 2 * 512  # valid columns of the right tiles
    bottom = height - 512  # valid rows of the bottom tiles
    assert len(tiles) == 6
    for index, tile in enumerate(tiles):
        if index % 3 == 2:
            assert not tile[:, right:].any(), f"right padding of tile {index}"
            assert tile[: (bottom if index >= 3 else 512), :right].all()
        if index >= 3:
            assert not tile[bottom:].any(), f"bottom padding of tile {index}"


def test_large_overview_rows_averaged_on_the_threads_equal_the_averages(tmp_path) -> None:
    """Rows large enough to be averaged band by band on the compression threads give the
    same first overview as :func:`halve` of the whole rows, bands in order."""
    width, height, bands = 4096, 1024, 3
    assert bands * cog_levels.ROWS_PER_PASS * width >= cog_levels.PARALLEL_HALVE_PIXELS
    rng = np.random.default_rng(5)
    rows = rng.integers(1, 60000, (bands, height, width), dtype=np.uint16)
    rows[1, 100:140, 300:333] = 0  # nodata in one band only
    pyramid = Pyramid(width, height, bands, "uint16", 0, Codec("zstd", 1), tmp_path, 2)
    try:
        pyramid.add(rows)
        pyramid.finish(predictor=2)
        level1 = pyramid.levels[1]
        tiles = _decoded_tiles(level1.path.read_bytes(), level1.byte_counts, bands)
    finally:
        pyramid.close()
    overview = np.concatenate(tiles, axis=1)  # one tile row of four tiles: 512 × 2048
    np.testing.assert_array_equal(overview.transpose(2, 0, 1), halve(rows, 0))


def test_a_tall_block_of_rows_is_averaged_a_slice_at_a_time(tmp_path, monkeypatch) -> None:
    """Averaging makes uint32 copies of its rows: a block of rows of any height is taken
    ``ROWS_PER_PASS`` rows at a time, into the same tiles as one row at a time."""
    width, height, bands = 700, 1100, 2
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 60000, (bands, height, width), dtype=np.uint16)
    averaged: list[int] = []

    def counted(block: np.ndarray, nodata: float | None) -> np.ndarray:
        averaged.append(block.shape[1])
        return halve(block, nodata)

    def levels(add: Callable[[Pyramid], None], folder: Path) -> list[bytes]:
        folder.mkdir()
        pyramid = Pyramid(width, height, bands, "uint16", 0, Codec("zstd", 1), folder, 2)
        try:
            add(pyramid)
            pyramid.finish(predictor=2)
            return [path.read_bytes() for path in pyramid.files]
        finally:
            pyramid.close()

    monkeypatch.setattr(cog_levels, "halve", counted)
    tall = levels(lambda p: p.add(rows), tmp_path / "tall")
    assert max(averaged) == cog_levels.ROWS_PER_PASS
    one_by_one = levels(
        lambda p: [p.add(rows[:, i : i + 1]) for i in range(height)], tmp_path / "rows"
    )
    assert tall == one_by_one
