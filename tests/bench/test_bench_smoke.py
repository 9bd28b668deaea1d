"""The benchmark harness runs a tiny workload end to end and records valid results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.report import SECTION, ceilings, update_results_md
from bench.training import _pairs, ratio_interval
from bench.workloads import WorkloadError, parse_spec


def test_tiny_workload_runs_two_iterations_and_writes_json(tmp_path: Path) -> None:
    argv = ["tiny-adversarial", "--runs", "1", "--warmup", "1", "--iterations", "2", "--no-tune"]
    assert main([*argv, "--no-peaks", "--name", "smoke", "--output", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "results" / "smoke.json").read_text())
    (workload,) = payload["workloads"]
    assert workload["workload"] == "tiny-adversarial"
    (run,) = workload["runs"]
    assert len(run["seconds_per_iteration"]) == 2
    assert all(s > 0 for s in run["seconds_per_iteration"])
    assert run["iterations_run"] == 1 + 2 + 1  # warm-up, timed, FLOP-counted
    assert workload["flops_per_iteration"] > 0 and workload["peak_rss_bytes"] > 0
    assert run["precision"] == "32-true" and run["threads"] == 2
    assert run["step_settings"]["sources"]["channels_last"] == "built-in"
    assert math.isfinite(workload["foreign_cpus"])
    assert payload["machine"]["torch"] and payload["settings"]["iterations"] == 2
    assert set(payload["load_average_1min"]) == {"before", "after"}
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert SECTION in markdown and "`tiny-adversarial`" in markdown
    assert payload["machine"]["cpu"] in markdown  # every row names the CPU
    assert "NHWC fused retain 32-true" in markdown


def test_ratio_interval_narrows_with_consistent_pairs() -> None:
    steady = ratio_interval([1.3, 1.31, 1.29, 1.3, 1.32], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert steady["median"] == pytest.approx(1.3) and steady["spread"] < 0.05
    assert steady["low"] <= steady["median"] <= steady["high"] and steady["pairs"] == 5
    noisy = ratio_interval([1.0, 1.6, 1.05, 1.55, 1.3], [1.0] * 5)
    assert noisy["spread"] > 0.05 and (noisy["min"], noisy["max"]) == (1.0, 1.6)


def test_every_variant_of_a_base_is_paired_with_that_base_s_reference() -> None:
    specs = [parse_spec(n) for n in ("adversarial", "adversarial+bf16", "pretrain")]
    specs.append(parse_spec("opensr:adversarial"))
    assert _pairs(specs) == [
        ("adversarial", "opensr:adversarial"),
        ("adversarial+bf16", "opensr:adversarial"),
    ]


def test_bf16_rows_are_read_against_the_bf16_peaks() -> None:
    peaks = {
        "conv_fp32": 220e9,
        "conv_fp32_nhwc_fwd_bwd": 190e9,
        "conv_fp32_nchw_fwd_bwd": 180e9,
        "matmul_fp32": 170e9,
        "conv_bf16": 420e9,
        "conv_bf16_nhwc_fwd_bwd": 300e9,
        "matmul_bf16": 400e9,
    }
    assert ceilings(peaks, "32-true") == (220e9, 190e9, 170e9)
    assert ceilings(peaks, "bf16-mixed") == (420e9, 300e9, 400e9)
    # results recorded before the bf16 forward+backward probe existed
    assert ceilings({"conv_bf16": 420e9}, "bf16-mixed") == (420e9, None, None)


def test_results_md_update_keeps_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    other = "## Super-resolution (issue #6)\n\ntheir table\n"
    path.write_text(f"# Benchmark results\n\n{SECTION}\n\nprose\n\n{other}")
    update_results_md("speed", "| a |\n|---|", path)
    update_results_md("speed", "| b |\n|---|", path)
    text = path.read_text()
    assert text.count("<!-- bench:speed -->") == 1 and "| b |" in text and "| a |" not in text
    assert text.index("prose") < text.index("| b |") < text.index(other)
    assert text.endswith(other)


def test_workload_spec_parses_variants_and_overrides() -> None:
    spec = parse_spec("small-pretrain+before+trainer.channels_last=false")
    assert spec.baseline_code and spec.threads == 2
    assert spec.overrides["trainer"]["channels_last"] is False
    assert spec.overrides["generator"]["channels"] == 32
    with pytest.raises(WorkloadError, match="choose one of"):
        parse_spec("pretrain+turbo")
    with pytest.raises(WorkloadError, match="unknown workload"):
        parse_spec("finetune")


def test_cog_codecs_measures_each_codec_on_both_kinds_of_tiles() -> None:
    """The codec table: every codec on smooth and noisy real-scene tiles; the noisy ones
    compress far less (they stand for an untrained generator's output), and the ratios are
    what the writer's own codecs give (decompressing restores the predicted bytes)."""
    import zlib

    from bench.cog_codecs import CODECS, measure, tiles
    from datasets.cog_levels import predict

    result = measure(count=1, rounds=1)
    rows = {(r["tiles"], r["codec"]): r for r in result["rows"]}
    assert set(rows) == {(k, f"{c.name} {c.level}") for k in ("smooth", "noisy") for c in CODECS}
    assert all(r["mb_per_s"] > 0 for r in rows.values())
    for codec in ("deflate 1", "zstd 1"):
        assert rows["smooth", codec]["ratio"] > 1.5 * rows["noisy", codec]["ratio"] > 1.5
    tile = tiles(1)["smooth"][0]
    data = predict(tile).tobytes()
    deflated = CODECS[0].compressor()(data)
    assert zlib.decompress(deflated) == data
    assert rows["smooth", "deflate 1"]["ratio"] == pytest.approx(len(data) / len(deflated))


def test_sr_profile_splits_the_forward_pass_into_convolutions_and_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The inference profile of the tiny generator: the op times add up to the profiled time,
    convolutions are found and their FLOPs counted; the table reads them against the peak
    (the peak probe itself is :mod:`bench.peaks`', replaced here by a fixed value)."""
    import argparse

    from bench import peaks, sr_profile

    monkeypatch.setattr(peaks, "measure", lambda threads: {"conv_fp32_nhwc_fwd": 100e9})
    args = argparse.Namespace(
        generator="tiny", tile_size=32, overlap=8, batch_size=2, precision="float32",
        threads=1, runs=2, top=50,
    )  # fmt: skip
    result = sr_profile.measure(args)
    assert result["conv_s"] > 0 and result["conv_gflop"] > 0
    assert result["total_gflop"] >= result["conv_gflop"]
    assert sum(r["seconds"] for r in result["rows"]) == pytest.approx(result["profiled_s"])
    assert {"aten::mkldnn_convolution", "aten::convolution"} & {r["op"] for r in result["rows"]}
    text = sr_profile.markdown(result, {"cpu": "test CPU", "torch_cpu_capability": "AVX2"})
    conv_share = result["conv_s"] / result["profiled_s"]
    assert f"convolutions: {conv_share:.0%} of the profiled op time" in text
    assert "of the conv forward peak (100 GFLOP/s, conv_fp32_nhwc_fwd)" in text
    # convolutions with a fused activation count their FLOPs: the same as unfused
    import srgan.inference_graph

    fused = {r["op"] for r in result["rows"]}
    assert (
        "mkldnn::_convolution_pointwise" in fused or srgan.inference_graph._POINTWISE_CONV is None
    )
    monkeypatch.setattr(srgan.inference_graph, "_POINTWISE_CONV", None)
    unfused = sr_profile.measure(args)
    assert unfused["conv_gflop"] == pytest.approx(result["conv_gflop"])


def test_a_full_width_strip_is_the_square_scene_s_top_rows(tmp_path: Path) -> None:
    """``--rows``: a scene as wide as the square one and only as high as asked (a scene's
    buffers follow its width), with the square scene's pixels; its table row says its shape."""
    import rasterio

    from bench.super_resolve import _scene, synthesize_scene

    with rasterio.open(synthesize_scene(600, tmp_path / "square.tif")) as square:
        top = square.read(window=((0, 40), (0, 600)))
    with rasterio.open(synthesize_scene(600, tmp_path / "strip.tif", rows=40)) as strip:
        assert (strip.width, strip.height) == (600, 40)
        assert np.array_equal(strip.read(), top)
    assert _scene({"size": 600, "rows": 40}) == "600 × 40"
    assert _scene({"size": 600, "rows": None}) == "600²"
