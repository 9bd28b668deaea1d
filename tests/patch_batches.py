"""Small patch batches for tests that append to a patch store directly."""

from __future__ import annotations

import numpy as np

from datasets.store_layout import PatchBatch


def one_patch(split: str = "train", size: int = 64, scale: int = 4) -> PatchBatch:
    """One all-ones 4-band patch of ``size`` HR pixels at offset (0, 0) in ``split``."""
    hr = np.ones((1, 4, size, size), dtype=np.uint16)
    return PatchBatch(
        hr=hr,
        lr=hr[:, :, ::scale, ::scale],
        row_off=np.zeros(1, dtype=np.int64),
        col_off=np.zeros(1, dtype=np.int64),
        split=np.array([split]),
        transform=np.zeros((1, 6)),
    )
