"""The ``super-resolve`` task's progress artifact: tiles done of the scene's total."""

from __future__ import annotations

import logging
import time
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact


class TileProgressArtifact:
    """A Prefect progress artifact fed by the tiler's ``(tiles_done, tiles_total)`` callback.

    Updates are throttled to one per :attr:`STEP_PERCENT` or per :attr:`STEP_SECONDS`,
    whichever comes first (so a long scene shows movement at least every 10 s while a tile
    batch finishes within that time), plus one at 100 %; each update is also logged.

    Args:
        scene_id: Named in the artifact's description.
        logger: Where the progress lines go.
    """

    STEP_PERCENT = 5.0
    STEP_SECONDS = 5.0

    def __init__(self, scene_id: str, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self.logger = logger
        self._reported = 0.0
        self._reported_at = time.monotonic()
        self.id: UUID = create_progress_artifact(  # type: ignore[assignment]
            0.0, key="super-resolve-progress", description=f"tiles super-resolved: {scene_id}"
        )

    def __call__(self, done: int, total: int) -> None:
        percent = round(100.0 * done / total, 1) if total else 100.0
        now = time.monotonic()
        due = (
            percent - self._reported >= self.STEP_PERCENT
            or now - self._reported_at >= self.STEP_SECONDS
            or done == total
        )
        if percent > self._reported and due:
            update_progress_artifact(self.id, percent)
            self.logger.info("super-resolved %d/%d tiles (%.1f%%)", done, total, percent)
            self._reported, self._reported_at = percent, now
