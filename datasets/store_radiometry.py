"""The radiometry of the scenes in a patch store, including those tiled before it was recorded.

Scenes tiled by this release record the harmonisation applied to them (``SceneEntry.radiometry``).
Scenes tiled by earlier releases were stored as read: right for products before processing
baseline 04.00, about 0.1 reflectance too bright for later ones. Their names tell which: a
legacy scene whose names date it before 2022-01-25 (or not at all) is reported as
*pre-2022 assumed*; one dated on or after it makes the store refuse new scenes, since a model
trained on it would learn two radiometries.
"""

from __future__ import annotations

from typing import Any

from datasets.errors import TilingError
from datasets.harmonise import OFFSET_BASELINE, OFFSET_DATE, baseline_tuple, name_evidence
from datasets.store_backends import StorageOptions, read_snapshot
from datasets.store_version import Manifest, SceneEntry

PRE_2022_ASSUMED = "pre-2022 assumed"
UNHARMONISED = "stored without harmonisation"


def scene_radiometry(entry: SceneEntry) -> dict[str, Any]:
    """The radiometry record of a committed scene; for legacy scenes, what their names imply
    (``source`` is :data:`PRE_2022_ASSUMED` or :data:`UNHARMONISED`)."""
    if entry.radiometry is not None:
        return entry.radiometry
    names = [entry.scene_id, (entry.source or "").rstrip("/").rsplit("/", 1)[-1]]
    dated, baseline = name_evidence(names)
    version = baseline_tuple(baseline) if baseline else None
    late = (version >= OFFSET_BASELINE) if version else (dated is not None and dated >= OFFSET_DATE)
    if late:
        evidence = f"baseline {baseline}" if version else f"date {dated}"
        detail = f"tiled before harmonisation was recorded; named with {evidence}"
        return {"source": UNHARMONISED, "detail": detail}
    detail = "tiled before harmonisation was recorded; no name dates it after 2022-01-24"
    return {"source": PRE_2022_ASSUMED, "detail": detail}


def check_store_radiometry(manifest: Manifest, uri: str) -> None:
    """Refuse to add scenes to a store holding scenes stored without harmonisation.

    Raises:
        TilingError: A legacy scene's names date it on or after 2022-01-25 (or baseline 04.00).
    """
    late = [
        entry.scene_id
        for entry in manifest.scenes
        if scene_radiometry(entry)["source"] == UNHARMONISED
    ]
    if late:
        raise TilingError(
            f"patch store {uri} holds {len(late)} scene(s) tiled before s2-srgan harmonised "
            f"radiometry and dated after 2022-01-24 ({', '.join(late[:3])}), stored about 0.1 "
            "reflectance too bright; adding scenes would mix two radiometries. Tile all scenes "
            "into a new store."
        )


def scene_rows(
    uri: str, version: str | None = None, storage_options: StorageOptions = None
) -> list[dict[str, Any]]:
    """One row per scene of the store at ``version``: patches, harmonisation and cloud mask
    (for training reports).

    Raises:
        PatchStoreError: no store or no such version at ``uri``.
    """
    rows = []
    for entry in read_snapshot(uri, version, storage_options).manifest.scenes:
        radiometry = scene_radiometry(entry)
        offsets = sorted(set(radiometry.get("offsets", {}).values()))
        rows.append(
            {
                "scene": entry.scene_id,
                "train": entry.n_train,
                "val": entry.n_val,
                "harmonisation": radiometry["source"],
                "baseline": radiometry.get("baseline") or "",
                "offset": ", ".join(f"{o:g}" for o in offsets) or "0",
                "clamped": radiometry.get("clamped_pixels", ""),
                "mask": (entry.masks or {}).get("source", "unrecorded"),
            }
        )
    return rows
