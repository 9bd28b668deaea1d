"""Deterministic train/validation assignment by scene or by spatial block, never per patch.

Random per-patch splits leak validation data: neighbouring, overlapping patches of one field would
sit on both sides. Here a whole scene, or a whole square block of a scene, goes to one side, decided
by a stable hash (BLAKE2b, not Python's salted ``hash``) of the scene id, the block and the seed, so
the same inputs give the same split on every machine and every run.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "val"]
SPLITS: tuple[Split, Split] = ("train", "val")


def _unit_hash(*parts: object) -> float:
    """Stable uniform number in [0, 1) from ``parts``."""
    key = "\x1f".join(str(p) for p in parts).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class SplitPolicy(BaseModel):
    """How patches are assigned to the train and validation splits.

    Attributes:
        mode: ``scene`` sends a whole scene to one split; ``block`` cuts each scene into square
            blocks of ``block_size`` HR pixels and sends each block to one split.
        val_fraction: expected fraction of scenes (or blocks) in validation.
        block_size: block edge in HR pixels (``block`` mode).
        seed: changes the assignment while keeping it deterministic.
        drop_straddlers: in ``block`` mode, drop patches whose footprint crosses a block border.
            When kept, such a patch takes the split of the block holding its top-left pixel, so its
            other pixels may overlap a block of the other split: a thin leak along block borders
            whenever ``block_size`` is not a multiple of the stride or the stride is smaller than
            the patch.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["scene", "block"] = "block"
    val_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    block_size: int = Field(default=512, gt=0)
    seed: int = 0
    drop_straddlers: bool = False

    def scene_split(self, scene_id: str) -> Split:
        """Split of a whole scene (``scene`` mode)."""
        return "val" if _unit_hash(self.seed, scene_id) < self.val_fraction else "train"

    def block_split(self, scene_id: str, block_row: int, block_col: int) -> Split:
        """Split of the block at (``block_row``, ``block_col``) of a scene (``block`` mode)."""
        u = _unit_hash(self.seed, scene_id, block_row, block_col)
        return "val" if u < self.val_fraction else "train"

    def patch_split(
        self, scene_id: str, row_off: int, col_off: int, patch_size: int
    ) -> Split | None:
        """Split of the patch whose top-left HR pixel is (``row_off``, ``col_off``).

        Returns:
            ``"train"`` or ``"val"``; ``None`` if the patch straddles a block border and
            ``drop_straddlers`` is set.
        """
        if self.mode == "scene":
            return self.scene_split(scene_id)
        block_row, block_col = row_off // self.block_size, col_off // self.block_size
        last = patch_size - 1
        straddles = (row_off + last) // self.block_size != block_row or (
            col_off + last
        ) // self.block_size != block_col
        if straddles and self.drop_straddlers:
            return None
        return self.block_split(scene_id, block_row, block_col)
