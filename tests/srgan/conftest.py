from typing import Any

import pytest
import torch
from lightning.pytorch import Callback
from toy_data import TINY_RUN, PairDataModule, make_pairs

from srgan.config import TrainingConfig, deep_merge, load_config

TINY: dict[str, Any] = deep_merge(
    TINY_RUN,
    {
        "validation": {"train_metrics_every": 2},
        # CPU even where a GPU exists: the resume tests compare weights bit for bit
        "trainer": {
            "checkpoint_every_n_iterations": 4,
            "log_every_n_iterations": 1,
            "accelerator": "cpu",
        },
    },
)


@pytest.fixture
def make_config():
    def make(**overrides: Any) -> TrainingConfig:
        return load_config("cpu-tiny", deep_merge(TINY, overrides))

    return make


@pytest.fixture(scope="session")
def toy_pairs():
    return make_pairs(40, bands=4, hr_size=16, scale=4, seed=3)


@pytest.fixture
def datamodule(toy_pairs):
    lr, hr = toy_pairs
    return PairDataModule((lr[:32], hr[:32]), (lr[32:], hr[32:]), batch_size=4, augment=True)


class Recorder(Callback):
    """Keeps every step's logged values, keyed by the module's iteration of that step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.global_steps: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        values = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.steps.append(values)
        self.global_steps.append(trainer.global_step)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
