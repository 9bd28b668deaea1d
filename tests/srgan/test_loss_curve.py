"""The loss-curve picture of the training report, drawn from a run's metric log.

Broken by hand once each: ``read_steps`` keeping the first row logged for an iteration (the
resume test fails); the D(G(x)) curve left out (the picture test misses its colour).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from srgan.loss_curve import D_FAKE, D_REAL, read_steps, render_loss_curves, write_loss_curves
from srgan.train import fit


@pytest.fixture
def run(make_config, datamodule, tmp_path):
    config = make_config(
        schedule={"pretrain_iterations": 4, "ramp_iterations": 2, "max_iterations": 10}
    )
    result = fit(config, datamodule, tmp_path / "run", final_validation=False)
    return str(result.run_dir)


def test_steps_hold_every_logged_iteration_with_losses_and_probabilities(run):
    steps = read_steps(run)
    assert list(steps) == list(range(10))
    assert all(steps[i]["discriminator/D(y)_prob"] == 0.0 for i in range(4))  # pretraining
    assert any(steps[i][D_REAL] != steps[i][D_FAKE] for i in range(4, 10))
    assert all(steps[i]["generator/content_loss"] > 0 for i in steps)


def test_a_resumed_run_draws_the_later_attempt(run):
    path = f"{run}/logs/metrics.csv"
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    steps = [row for row in rows if row["training/iteration"]]  # not the validation rows
    # a later attempt that logged iteration 5 again (after a resume), with another value
    redone = dict(steps[5], **{"generator/content_loss": "123.0"})
    with open(path, "a", newline="") as file:
        csv.DictWriter(file, fieldnames=list(rows[0])).writerow(redone)
    assert read_steps(run)[5]["generator/content_loss"] == 123.0


def test_the_picture_is_written_beside_the_previews(run):
    path = write_loss_curves(run)
    assert path == f"{run}/previews/loss_curves.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (550, 800, 3)
    # the four curves' colours are all drawn (matplotlib's tab10 blue, red, green, purple)
    for colour in ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)):
        assert (np.abs(image.astype(int) - colour).sum(-1) < 30).sum() > 50, colour


def test_no_log_no_picture(tmp_path):
    assert read_steps(str(tmp_path)) == {} and render_loss_curves({}) is None
    assert write_loss_curves(str(tmp_path)) is None


def test_png_bytes_decode(run):
    png = render_loss_curves(read_steps(run))
    assert png is not None and Image.open(io.BytesIO(png)).format == "PNG"
