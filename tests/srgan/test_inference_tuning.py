"""Scene inference settings: explicit values win, then what ``tune`` measured here, then defaults.

Broken by hand once each: ``tiling_for`` preferring the measurement over an explicit tile size
fails ``test_measured_tiling_and_precision_are_used_unless_given``; ``tune_inference`` keeping
bfloat16 whatever its difference fails ``test_bfloat16_too_far_from_float32_is_not_chosen``;
``smallest_of_the_fastest`` taking the fastest fails
``test_a_tile_barely_faster_does_not_win_over_a_smaller_one``.
"""

from __future__ import annotations

import json

import pytest
import torch

from srgan import inference_tuning
from srgan.cli import main
from srgan.inference import load_inference_model, resolve_precision
from srgan.inference_tuning import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TILE_SIZE,
    TIE_MARGIN,
    Candidate,
    measured_inference_settings,
    overlap_recompute,
    smallest_of_the_fastest,
    tiling_for,
    tune_inference,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2SR_TUNING", str(tmp_path / "tuning.json"))


def test_without_measurement_the_cpu_runs_float32_with_the_default_tiles(tiny_checkpoint):
    model = load_inference_model(tiny_checkpoint, device="cpu")
    assert (model.precision, model.dtype) == ("float32", torch.float32)
    assert tiling_for(model, None, None) == (DEFAULT_TILE_SIZE, DEFAULT_BATCH_SIZE)
    assert tiling_for(model, 48, 3) == (48, 3)


def test_measured_tiling_and_precision_are_used_unless_given(tiny_checkpoint):
    model = load_inference_model(tiny_checkpoint, device="cpu", precision="float32")
    trial = tune_inference(model, overlap=4, tiles=(16, 24, 32), batches=(1, 2), repeats=1)
    best = trial.best
    assert best.tile_size in (16, 24, 32) and best.batch_size in (1, 2)
    fastest = max(c.output_mp_per_s for c in trial.candidates)
    assert best.output_mp_per_s >= round((1 - TIE_MARGIN) * fastest, 4)
    tied = [c for c in trial.candidates if c.output_mp_per_s >= (1 - TIE_MARGIN) * fastest]
    assert best.batch_size * best.tile_size**2 == min(c.batch_size * c.tile_size**2 for c in tied)
    assert {c.precision for c in trial.candidates} <= {"float32", "bfloat16"}
    assert measured_inference_settings(model.config, model.device, overlap=4) == best
    assert measured_inference_settings(model.config, model.device, overlap=8) is None

    auto = load_inference_model(tiny_checkpoint, device="cpu")
    assert auto.precision == "float32"  # measured for overlap 16 only: nothing for this run
    tuned = tune_inference(auto, overlap=16, tiles=(40,), batches=(1,), repeats=1)
    again = load_inference_model(tiny_checkpoint, device="cpu")
    assert again.precision == tuned.best.precision
    assert tiling_for(again, None, None) == (40, 1)
    assert tiling_for(again, 64, None) == (64, 1)
    assert load_inference_model(tiny_checkpoint, device="cpu", precision="float32").dtype == (
        torch.float32
    )


def test_a_tile_barely_faster_does_not_win_over_a_smaller_one():
    # output MP/s of the 10 m preset's bf16 trial on an AMD EPYC (bench/RESULTS.md): tile 384
    # was 2 % faster than 256, and a scene with it peaked 0.7 GiB higher
    trial = [
        Candidate("bfloat16", 192, 1, 0.46, 1.070),
        Candidate("bfloat16", 256, 1, 0.84, 1.101),
        Candidate("bfloat16", 384, 1, 1.93, 1.125),
        Candidate("bfloat16", 128, 4, 0.80, 1.090),
        Candidate("float32", 256, 1, 1.72, 0.535),
    ]
    assert smallest_of_the_fastest(trial) == trial[1]
    assert smallest_of_the_fastest(trial, margin=0.0) == trial[2]
    assert smallest_of_the_fastest(trial, margin=0.1) == trial[0]
    # same pixels per call: the faster one
    four_small = Candidate("bfloat16", 128, 4, 0.80, 1.110)
    assert smallest_of_the_fastest([trial[1], four_small], margin=0.1) == four_small


def test_the_trial_never_picks_a_tile_above_256_even_when_larger_ones_run_faster(
    tiny_checkpoint, monkeypatch
):
    # every call takes the same time, so each larger tile gives more output pixels per second
    # and the trial climbs to its largest candidate: that must be 256 (memory grows with it)
    model = load_inference_model(tiny_checkpoint, device="cpu", precision="float32")
    monkeypatch.setattr(inference_tuning, "_time_call", lambda fn, sync, repeats: 0.1)
    trial = tune_inference(model, precisions=("float32",), batches=(1,), repeats=1, store=False)
    assert trial.best.tile_size == 256
    assert max(c.tile_size for c in trial.candidates) == 256


def test_the_trial_never_puts_more_than_one_256_px_tile_in_a_call(tiny_checkpoint, monkeypatch):
    # every call takes the same time, so more tiles per call would always win: the trial still
    # stops at one tile of 256² LR pixels per call (the memory a full-width scene was measured in)
    model = load_inference_model(tiny_checkpoint, device="cpu", precision="float32")
    monkeypatch.setattr(inference_tuning, "_time_call", lambda fn, sync, repeats: 0.1)
    trial = tune_inference(model, precisions=("float32",), repeats=1, store=False)
    assert (trial.best.tile_size, trial.best.batch_size) == (256, 1)
    assert max(c.batch_size * c.tile_size**2 for c in trial.candidates) == 256**2


def test_bfloat16_too_far_from_float32_is_not_chosen(tiny_checkpoint, monkeypatch):
    model = load_inference_model(tiny_checkpoint, device="cpu", precision="float32")
    monkeypatch.setattr(inference_tuning, "BF16_TOLERANCE", 0.0)
    trial = tune_inference(model, overlap=4, tiles=(16,), batches=(1,), repeats=1, store=False)
    assert trial.bf16_mean_abs_difference is not None and trial.bf16_mean_abs_difference > 0
    assert {c.precision for c in trial.candidates} == {"float32"}


def test_bfloat16_predictions_stay_close_to_float32(tiny_checkpoint):
    x = torch.rand(2, 4, 12, 12)
    fp32 = load_inference_model(tiny_checkpoint, device="cpu", precision="float32")
    bf16 = load_inference_model(tiny_checkpoint, device="cpu", precision="bfloat16")
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.predict(x), fp32.predict(x), atol=0.03, rtol=0.03)


def test_unknown_precision_is_refused(tiny_checkpoint):
    model = load_inference_model(tiny_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        resolve_precision("fp8", model.config, model.device)  # type: ignore[arg-type]


def test_recompute_grows_as_tiles_shrink():
    assert overlap_recompute(128, 16) == pytest.approx((128 / 112) ** 2)
    assert overlap_recompute(64, 16) > overlap_recompute(256, 16) > 1


def test_tune_command_reports_and_caches_inference_settings(tiny_checkpoint, capsys):
    assert main(["tune", "--checkpoint", tiny_checkpoint, "--device", "cpu", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("inference: ")
    report = json.loads(out[out.index("{") :])
    best = report["inference"]["best"]
    model = load_inference_model(tiny_checkpoint, device="cpu")
    assert tiling_for(model, None, None) == (best["tile_size"], best["batch_size"])


def test_tune_command_needs_something_to_tune(capsys):
    assert main(["tune"]) == 2
    assert "needs --config and/or --checkpoint" in capsys.readouterr().err
