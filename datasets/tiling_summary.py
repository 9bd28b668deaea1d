"""What a tiling run left in its store, scene by scene, for the CLI's table and the flow's
artifacts.

Counts of kept and validation patches come from the store's committed manifest, not from the
tasks' results, so a scene whose task was retried or recomputed (a lost Dask worker) is counted
once, as the store holds it; drop counts come from the attempt that wrote the scene.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets.errors import PatchStoreError
from datasets.store_backends import read_snapshot
from datasets.store_radiometry import scene_radiometry
from datasets.store_version import Manifest, SceneEntry
from datasets.tiling import TileResult

_DROP_REASONS = ("nodata", "masked", "bright", "straddling")


@dataclass(frozen=True)
class SceneRow:
    """One scene of a tiling run."""

    scene: str
    status: str
    kept: int = 0
    val: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    harmonisation: str = ""
    mask: str = ""


@dataclass(frozen=True)
class TilingSummary:
    """A tiling run's outcome as the store holds it.

    Attributes:
        store: The store URI.
        version: Its version after the run (``None`` if nothing is committed).
        rows: One per scene of the run, failed ones included.
        store_train: Training patches in the whole store.
        store_val: Validation patches in the whole store.
        failed: Scenes that could not be tiled.
    """

    store: str
    version: str | None
    rows: tuple[SceneRow, ...]
    store_train: int
    store_val: int
    failed: int

    @property
    def patches_added(self) -> int:
        """Patches of the scenes this run added (as the store holds them)."""
        return sum(row.kept for row in self.rows if row.status == "added")

    @property
    def warning(self) -> str | None:
        """Why the store cannot be trained on yet, if it cannot."""
        if self.store_train + self.store_val and not self.store_val:
            return (
                f"patch store {self.store} holds no validation patches "
                f"({self.store_train} training); training will refuse it. Tile with a smaller "
                "split.block_size, or split.mode=scene with at least two scenes."
            )
        return None

    def table(self) -> list[dict[str, Any]]:
        """Rows for a table artifact or a CLI table (one per scene, then a store row)."""
        rows: list[dict[str, Any]] = [
            {
                "scene": row.scene,
                "status": row.status,
                "kept": row.kept,
                "val": row.val,
                **{f"dropped_{reason}": row.dropped.get(reason, 0) for reason in _DROP_REASONS},
                "harmonisation": row.harmonisation,
                "mask": row.mask,
            }
            for row in self.rows
        ]
        store_row = {"scene": "(whole store)", "status": self.warning or "ok"}
        rows.append({**store_row, "kept": self.store_train + self.store_val, "val": self.store_val})
        return rows

    def markdown(self) -> str:
        """A short markdown report."""
        added = sum(row.status == "added" for row in self.rows)
        present = sum(row.status == "already in store" for row in self.rows)
        dropped = {
            reason: sum(row.dropped.get(reason, 0) for row in self.rows) for reason in _DROP_REASONS
        }
        text = (
            f"# Tiling summary\n\n- store: `{self.store}` (version `{self.version}`)\n"
            f"- scenes: {added} added, {present} already present, {self.failed} failed\n"
            f"- patches added: {self.patches_added}\n"
            f"- dropped: {', '.join(f'{n} {reason}' for reason, n in dropped.items())}\n"
            f"- store: {self.store_train} training, {self.store_val} validation patches\n"
        )
        return text + (f"\n**Warning:** {self.warning}\n" if self.warning else "")


def _harmonisation_label(entry: SceneEntry) -> str:
    record = scene_radiometry(entry)
    offsets = {value for value in record.get("offsets", {}).values()}
    offset = f", offset {', '.join(f'{o:g}' for o in sorted(offsets))}" if offsets else ""
    clamped = record.get("clamped_pixels")
    return f"{record['source']}{offset}" + (f", {clamped} clamped" if clamped else "")


def _row(result: TileResult, entry: SceneEntry | None, present: Collection[str] | None) -> SceneRow:
    dropped = {
        "nodata": result.dropped_nodata,
        "masked": result.dropped_masked,
        "bright": result.dropped_bright,
        "straddling": result.dropped_straddling,
    }
    # a recomputed task (lost Dask worker) finds its own commit: the run still added the scene
    found = result.skipped_existing if present is None else result.scene_id in present
    status = "already in store" if found else "added"
    if entry is None:
        return SceneRow(result.scene_id, status, dropped=dropped)
    masks = entry.masks or {}
    return SceneRow(
        result.scene_id,
        status,
        entry.count,
        entry.n_val,
        {} if found else dropped,
        _harmonisation_label(entry),
        str(masks.get("source", "unrecorded")),
    )


def summarise_store(
    store: str,
    results: Sequence[TileResult],
    failures: Sequence[tuple[str, str]],
    storage_options: dict[str, Any] | None = None,
    present_before: Collection[str] | None = None,
) -> TilingSummary:
    """Summarise a tiling run from its results and the store's committed manifest.

    Args:
        store: The store URI.
        results: One per scene tiled (or found already present).
        failures: ``(scene URI, error)`` per scene that failed.
        storage_options: s3fs options of the store.
        present_before: Ids of the scenes the store held before the run; the run added the
            others (``None``: as the results say, which counts a scene committed by an attempt
            whose worker was lost as already present).
    """
    try:
        snapshot = read_snapshot(store, None, storage_options)
        manifest, version = snapshot.manifest, snapshot.version
    except PatchStoreError:
        manifest, version = Manifest(), None
    rows = [_row(result, manifest.entry(result.scene_id), present_before) for result in results]
    rows += [SceneRow(uri, f"failed: {error}") for uri, error in failures]
    return TilingSummary(
        store,
        version,
        tuple(rows),
        sum(entry.n_train for entry in manifest.scenes),
        sum(entry.n_val for entry in manifest.scenes),
        len(failures),
    )
