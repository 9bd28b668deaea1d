"""Read a checkpoint file weights-only, without Lightning (inference starts in a second).

:mod:`srgan.checkpointing` (which needs Lightning for its callback) re-exports these names.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import fsspec
import torch

from datasets.output_location import is_remote, local_path
from datasets.storage_errors import StorageError, diagnose_missing, storage_errors


class CheckpointError(RuntimeError):
    """No usable checkpoint could be found or loaded."""


#: torch's words for a global its weights-only unpickler refused
_REFUSED_GLOBAL = re.compile(r"unsupported (?:global:? )?GLOBAL ([\w.]+)", re.IGNORECASE)
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


def refused_global(err: BaseException) -> str | None:
    """The global (``posix.system``...) torch's weights-only unpickler refused in ``err``, if
    that is why loading failed."""
    refused = _REFUSED_GLOBAL.search(str(err))
    return refused.group(1) if refused else None


def _unpickling_error(uri: str | Path, err: pickle.UnpicklingError) -> CheckpointError:
    """What a refusal of torch's weights-only unpickler means, without torch's advice to load
    the file unrestricted (that would run whatever code it holds)."""
    refused = _REFUSED_GLOBAL.search(str(err))
    if refused:
        return CheckpointError(
            f"checkpoint {uri} holds code or objects that are not allowed (global "
            f"{refused.group(1)}); it was refused and nothing in it ran. s2-srgan checkpoints "
            "hold tensors and plain values only: use a checkpoint written by s2-srgan, from a "
            "source you trust"
        )
    reason = _UNPICKLER_ERROR.search(str(err))
    detail = f" ({reason.group(1).strip()})" if reason else ""
    return CheckpointError(f"checkpoint {uri} is damaged or not a checkpoint{detail}")


def mappable_file(uri: str | Path) -> str | None:
    """The local file ``uri`` names (a path or ``file://`` URL) when torch can map it (its
    zip format, which Lightning and ``torch.save`` write since torch 1.6), else ``None``."""
    if is_remote(str(uri)):
        return None
    path = local_path(str(uri))
    try:
        with open(path, "rb") as f:
            return str(path) if f.read(4) == b"PK\x03\x04" else None
    except OSError:  # missing, a folder...: said by the ordinary read
        return None


def load_checkpoint(uri: str | Path, *, mapped: bool = False) -> dict[str, Any]:
    """Load a checkpoint weights-only (no pickled code runs) from a path or fsspec URL.

    ``mapped``: a local file is memory-mapped instead of read, so only the tensors the caller
    touches are read from disk (inference uses the generator's, a tenth of a training
    checkpoint). For callers done with the content before they return: the tensors are views
    of the file while they live.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or holds pickled
            code or objects (the offending global is named).
        StorageError: the file is on S3 and cannot be reached, its bucket is missing, or the
            access is refused.
    """
    local = mappable_file(uri) if mapped else None
    try:
        if local is not None:
            checkpoint = torch.load(local, map_location="cpu", weights_only=True, mmap=True)
        else:
            with storage_errors(str(uri)), fsspec.open(str(uri), "rb") as f:
                checkpoint = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        diagnose_missing(str(uri))  # a missing bucket or prefix is said as such
        raise CheckpointError(f"checkpoint {uri} does not exist") from None
    except pickle.UnpicklingError as err:  # the weights-only unpickler refused the data
        raise _unpickling_error(uri, err) from None
    except (CheckpointError, StorageError):
        raise
    except Exception as err:  # torch raises several types for damaged archives
        raise CheckpointError(f"checkpoint {uri} is damaged or not a checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{uri} is not an s2-srgan/Lightning checkpoint (no state_dict)")
    return checkpoint
