"""The random number generators' states: captured, stored weights-only, restored exactly.

Shown failing: restoring NumPy's state with ``pos`` set to 0, or skipping
``torch.set_rng_state``, makes the draws after the restore differ (mutation testing found both
unguarded by the training tests, which draw from torch alone).
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from srgan.rng import restore_rng_states, rng_states


def _draws() -> tuple[list[float], list[float], list[float], list[float]]:
    return (
        [random.random() for _ in range(3)],
        np.random.random(3).tolist(),
        [float(np.random.standard_normal())],  # leaves a cached Gaussian in NumPy's legacy state
        torch.rand(3).tolist(),
    )


def test_restored_generators_draw_the_same_numbers_again() -> None:
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    _draws()  # move every generator away from its seed
    states = rng_states()
    first = _draws()
    _draws()
    restore_rng_states(states)
    assert _draws() == first


def test_states_survive_a_weights_only_checkpoint() -> None:
    random.seed(1)
    np.random.seed(2)
    np.random.standard_normal()  # a cached Gaussian is part of NumPy's state
    torch.manual_seed(3)
    states = rng_states()
    expected = _draws()
    buffer = io.BytesIO()
    torch.save({"rng": states}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"]
    _draws()
    restore_rng_states(loaded)
    assert _draws() == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_generators_are_restored_too() -> None:
    """Not run without a GPU (so mutation testing on CPU lists the CUDA lines as equivalent)."""
    torch.cuda.manual_seed_all(5)
    states = rng_states()
    assert len(states["cuda"]) == torch.cuda.device_count()
    expected = torch.rand(3, device="cuda").tolist()
    torch.rand(3, device="cuda")
    restore_rng_states(states)
    assert torch.rand(3, device="cuda").tolist() == expected
