"""What a checkpoint records about the data it was trained on, for inference-time QA and provenance.

:class:`~srgan.lineage_callback.TrainingLineage` (a Lightning callback added by
:func:`srgan.train.build_trainer`) writes ``checkpoint["s2sr_lineage"]``: the patch store and
its version, the degradation that made its LR patches, and the run folder. :func:`read_lineage`
reads it back; a checkpoint written before this existed (or trained on another DataModule)
reads as an empty lineage, and the QA then falls back to the default degradation and says so.
Reading needs no Lightning: scene inference starts without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from datasets.degradation import Degradation

log = logging.getLogger(__name__)

LINEAGE_KEY = "s2sr_lineage"


@dataclass(frozen=True)
class CheckpointLineage:
    """Training data lineage recorded in a checkpoint (all fields optional).

    Attributes:
        store: Patch store URI; ``store_version`` the version trained on.
        degradation: ``Degradation.to_attrs()`` of the store's LR patches.
        run_dir: The training run's folder (``<storage>/runs/<run-key>``).
    """

    store: str | None = None
    store_version: str | None = None
    degradation: dict[str, Any] | None = None
    run_dir: str | None = None

    @property
    def run_key(self) -> str | None:
        """The run folder's name (the run key under ``<storage>/runs/``)."""
        return self.run_dir.rstrip("/").rsplit("/", 1)[-1] if self.run_dir else None

    def qa_degradation(self) -> tuple[Degradation, str]:
        """The degradation to simulate for QA, and where it came from (for the QA record).

        Returns ``(Degradation(), reason)`` when the checkpoint records none, records one this
        version cannot read, or records a ``real`` one (LR read from coarser bands: nothing to
        simulate, so the default Sentinel-2-like blur stands in).
        """
        recorded = self.degradation
        if not recorded:
            return Degradation(), "default: the checkpoint records no degradation (older run)"
        options = {k: v for k, v in recorded.items() if k in Degradation.model_fields}
        try:
            degradation = Degradation(kind=recorded.get("method", "gaussian_area"), **options)
        except ValidationError as err:
            return Degradation(), f"default: the checkpoint's degradation is unreadable ({err})"
        if degradation.kind == "real":
            return Degradation(), "default: trained on real coarse-band LR, simulated as default"
        return degradation, "checkpoint"


def read_lineage(checkpoint: dict[str, Any]) -> CheckpointLineage:
    """The lineage recorded in a loaded checkpoint dict (empty if none)."""
    record = checkpoint.get(LINEAGE_KEY)
    if not isinstance(record, dict):
        return CheckpointLineage()
    return CheckpointLineage(
        store=record.get("store"),
        store_version=record.get("store_version"),
        degradation=record.get("degradation"),
        run_dir=record.get("run_dir"),
    )
