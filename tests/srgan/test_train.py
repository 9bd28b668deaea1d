"""``srgan.train``: the precision and device a run gets from ``trainer.accelerator``."""

import pytest
import torch

from srgan.train import build_trainer, default_precision, device_name


@pytest.mark.parametrize(
    ("accelerator", "cuda", "precision"),
    [
        ("cpu", True, "32-true"),
        ("auto", True, "bf16-mixed"),
        ("gpu", True, "bf16-mixed"),
        ("cuda", True, "bf16-mixed"),
        ("auto", False, "32-true"),
        ("cpu", False, "32-true"),
    ],
)
def test_default_precision_follows_the_accelerator(accelerator, cuda, precision, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert default_precision(accelerator) == precision


def test_cpu_run_on_a_gpu_machine_trains_in_float32(make_config, tmp_path, monkeypatch):
    # torch and Lightning see a GPU, but the config asks for the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    trainer, _ = build_trainer(make_config(trainer={"accelerator": "cpu"}), tmp_path)
    assert trainer.precision == "32-true"
    assert trainer.strategy.root_device.type == "cpu"


def test_explicit_precision_wins(make_config, tmp_path):
    cfg = make_config(trainer={"accelerator": "cpu", "precision": "bf16-mixed"})
    trainer, _ = build_trainer(cfg, tmp_path)
    assert trainer.precision == "bf16-mixed"


def test_device_name_is_the_device_trained_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_name(torch.device("cpu")).startswith("cpu (")
