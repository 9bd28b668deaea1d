"""Stop training at the first non-finite loss term, naming it."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training stops and the last good checkpoint is kept."""


def check_finite(iteration: int, every: int, terms: dict[str, Tensor]) -> None:
    """Raise if any of the named scalar ``terms`` is NaN or infinite (at every ``every``-th
    training ``iteration``: each check waits for the device).

    Raises:
        NonFiniteLossError: naming the bad terms and ``iteration``, with what to change.
    """
    if iteration % every:
        return
    # one host sync for all terms; only unpacked when something is wrong
    values = torch.stack([t.detach().float() for t in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    bad = [n for n, v in zip(terms, values.tolist(), strict=True) if not math.isfinite(v)]
    raise NonFiniteLossError(
        f"non-finite {', '.join(bad)} at iteration {iteration}; training stopped, the last good "
        "checkpoint is kept. Lower the learning rate, enable gradient clipping "
        "(optim.*.grad_clip_norm) or check the input data for NaN."
    )
