"""The training task's retry condition: input errors end the run, other failures are retried."""

from __future__ import annotations

import pytest
from prefect.states import Failed

from datasets.errors import PatchStoreError, StoreConflictError, StoreMismatchError
from srgan.checkpointing import CheckpointError
from srgan.config import ConfigError
from srgan.module import NonFiniteLossError
from srgan.train import InitCheckpointError
from tasks.train import retry_unless_input_error


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
def test_retry_condition(error: Exception, retried: bool) -> None:
    state = Failed(data=error)
    assert retry_unless_input_error(None, None, state) is retried  # type: ignore[arg-type]
