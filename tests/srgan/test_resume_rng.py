"""Exact resume of a run that draws random numbers in every step (the stochastic generator).

The default generator draws no global random numbers after initialisation, so a resume that
forgot to restore the random number generators would still reproduce its weights. The
stochastic generator samples its noise vector with ``torch.randn`` in every training step: a
resumed run reproduces the uninterrupted one only if the checkpoint's RNG states are restored.

Shown failing: with ``restore_rng_states(state["rng"])`` removed from
``SRGANModule.on_load_checkpoint``, the resumed run redraws the noise of iteration 0 onwards
(``fit`` re-seeds before loading) and its weights differ from the uninterrupted run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback

from srgan.checkpointing import load_checkpoint
from srgan.train import fit

STOCHASTIC = {"generator": {"name": "stochastic", "channels": 8, "n_blocks": 1, "noise_dim": 4}}


class StopBefore(Callback):
    """Raise before the step of ``iteration`` (the run is saved there, as after a crash)."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, idx: int) -> None:
        if pl_module.iteration == self.iteration:
            raise RuntimeError("injected stop")


def _networks(checkpoint: str) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)["state_dict"]
    return {k: v for k, v in state.items() if k.split(".")[0] in {"generator", "discriminator"}}


def test_a_resumed_stochastic_run_draws_the_noise_the_uninterrupted_run_drew(
    make_config: Any, datamodule: Any, tmp_path: Path
) -> None:
    cfg = make_config(**STOCHASTIC, schedule={"max_iterations": 10})
    straight = fit(cfg, datamodule, tmp_path / "straight", final_validation=False)
    assert straight.last_checkpoint is not None

    run_dir = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="injected stop"):
        fit(cfg, datamodule, run_dir, callbacks=[StopBefore(6)], final_validation=False)
    resumed = fit(cfg, datamodule, run_dir, final_validation=False)
    assert resumed.resumed_from is not None and resumed.iteration == 10
    assert resumed.last_checkpoint is not None

    a, b = _networks(straight.last_checkpoint), _networks(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from the uninterrupted run in {different[:3]}"
