"""Read a checkpoint file weights-only, without Lightning (inference starts in a second).

:mod:`srgan.checkpointing` (which needs Lightning for its callback) re-exports both names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import torch


class CheckpointError(RuntimeError):
    """No usable checkpoint could be found or loaded."""


def load_checkpoint(uri: str | Path) -> dict[str, Any]:
    """Load a checkpoint weights-only (no pickled code runs) from a path or fsspec URL.

    Raises:
        CheckpointError: the file is missing, truncated, or not a checkpoint.
    """
    try:
        with fsspec.open(str(uri), "rb") as f:
            checkpoint = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {uri} does not exist") from None
    except Exception as err:  # torch raises several types for damaged archives
        raise CheckpointError(f"checkpoint {uri} is damaged or not a checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{uri} is not an s2-srgan/Lightning checkpoint (no state_dict)")
    return checkpoint
