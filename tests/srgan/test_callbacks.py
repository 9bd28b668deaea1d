"""The module's callbacks: host settings around any fit, and the record of validations."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from heap_probe import large_block_is_mapped
from lightning.pytorch import Callback, Trainer
from PIL import Image

from srgan.module import SRGANModule
from srgan.preview import GAP
from srgan.train import build_trainer, fit


class LayoutProbe(Callback):
    """What the first training step saw: memory layouts of the batch and of a conv weight, and
    the fused flag of each optimizer."""

    def __init__(self) -> None:
        self.seen: dict[str, object] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.seen:
            return
        conv = next(m for m in pl_module.generator.modules() if isinstance(m, torch.nn.Conv2d))
        nhwc = torch.channels_last
        self.seen = {
            "batch_nhwc": all(t.is_contiguous(memory_format=nhwc) for t in batch),
            "weight_nhwc": conv.weight.is_contiguous(memory_format=nhwc),
            "fused": [group["fused"] for opt in trainer.optimizers for group in opt.param_groups],
        }


def _bare_trainer(probe: Callback) -> Trainer:
    """A plain Lightning Trainer: nothing of ``srgan.train``, so the module brings the tuning."""
    return Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )


@pytest.mark.parametrize("tuned", [True, False])
def test_host_settings_apply_during_fit_with_any_trainer(make_config, datamodule, tuned):
    cfg = make_config(trainer={"channels_last": tuned}, optim={"fused": tuned})
    module, probe = SRGANModule(cfg), LayoutProbe()
    _bare_trainer(probe).fit(module, datamodule=datamodule)
    assert probe.seen == {
        "batch_nhwc": tuned,
        "weight_nhwc": tuned,
        "fused": [True if tuned else None] * 2,
    }
    conv = next(m for m in module.generator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()  # back to NCHW once the fit ends


def test_fused_flag_is_set_again_after_a_resume(make_config, datamodule, tmp_path):
    """The resumed optimizer state carries the flag it was saved with (here: not fused)."""
    fit(make_config(optim={"fused": False}), datamodule, tmp_path, final_validation=False)
    cfg = make_config(optim={"fused": True}, schedule={"max_iterations": 12})
    probe = LayoutProbe()
    fit(cfg, datamodule, tmp_path, callbacks=[probe], final_validation=False)
    assert probe.seen["fused"] == [True, True]


def test_validations_are_recorded_with_previews(make_config, datamodule, tmp_path):
    """Two validations during fit (iterations 5 and 10) and the final one, which adds a preview
    but no history row."""
    result = fit(make_config(), datamodule, tmp_path)
    assert [row["iteration"] for row in result.metric_history] == [5.0, 10.0]
    assert set(result.metric_history[-1]) >= {"val_metrics/l1", "val_metrics/psnr_gain"}
    previews = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert previews == ["latest.png", "preview_00000005.png", "preview_00000010.png"]
    assert result.preview == str(tmp_path / "previews" / "preview_00000010.png")
    grid = np.asarray(Image.open(result.preview))
    # LR | bicubic | SR | HR under a header, one row per preview sample (3 of the 8
    # validation patches), the 16 px patches magnified 8 times to the 128 px preview crop
    panel = 128 + GAP
    assert grid.shape[1:] == (4 * panel + GAP, 3)
    assert 3 * panel + GAP < grid.shape[0] < 4 * panel


def test_no_history_without_the_recorder(make_config, datamodule, tmp_path):
    """The module itself keeps none: a checkpoint of a bare fit has no validation history."""
    cfg = make_config()
    trainer, last = build_trainer(cfg, tmp_path)
    trainer.fit(SRGANModule(cfg), datamodule=datamodule)
    state = torch.load(last.last_path, weights_only=True)["srgan"]
    assert "val_history" not in state and state["iteration"] == 10


class _FailAtFirstBatch(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        raise RuntimeError("injected failure")


def test_a_failed_fit_gives_back_heap_retention_and_threads(make_config, datamodule, tmp_path):
    from srgan import heap

    threads, users = torch.get_num_threads(), heap._users
    cfg = make_config(trainer={"retain_freed_memory": True, "threads": threads + 1})
    with pytest.raises(RuntimeError, match="injected"):
        fit(cfg, datamodule, tmp_path, callbacks=[_FailAtFirstBatch()], final_validation=False)
    assert heap._users == users
    if platform.libc_ver()[0] == "glibc":  # freed memory is handed back again
        assert large_block_is_mapped()
    assert torch.get_num_threads() == threads
