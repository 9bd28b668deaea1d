"""Which training failures are input errors (final) and which are worth a flow retry."""

from __future__ import annotations

import pytest

from datasets.errors import PatchStoreError, StoreConflictError, StoreMismatchError
from srgan.checkpointing import CheckpointError
from srgan.config import ConfigError
from srgan.module import NonFiniteLossError
from srgan.train import InitCheckpointError
from tasks.train import is_input_error


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (RuntimeError("injected"), True),
        (ConnectionError("reset by peer"), True),
        (StoreConflictError("another writer committed"), True),  # transient, though a store error
        (ConfigError("unknown key"), False),
        (PatchStoreError("no store"), False),
        (StoreMismatchError("bands"), False),
        (InitCheckpointError("architecture"), False),
        (CheckpointError("none loads"), False),
        (NonFiniteLossError("nan"), False),
    ],
)
def test_input_errors(error: Exception, retried: bool) -> None:
    assert is_input_error(error) is not retried
