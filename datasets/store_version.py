"""The scene manifest of a patch store and the version derived from it.

The manifest is the list of committed scenes kept in the store's root attrs: each scene owns a
contiguous range ``[start, start + count)`` of the ``patch`` dimension. Patches outside every
committed range (left by a crashed append) are invisible to readers and overwritten by the next
append. Scenes are only ever appended, so the store at any earlier version is a prefix of
the ``patch`` dimension, and the manifest prefix that goes with it.

An Icechunk store's version is its snapshot id. A plain Zarr store's version is a BLAKE2b hash of
its parameters and manifest; every committed version is kept in a ``versions`` history attr, so an
older version reopens exactly as the prefix it named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from datasets.errors import PatchStoreError, SceneIdConflictError


@dataclass(frozen=True)
class SceneEntry:
    """One committed scene: its patches are ``patch[start : start + count]``.

    ``source`` is the URI the scene was read from; ``None`` for scenes committed before stores
    recorded it. ``radiometry`` is the harmonisation applied (``Harmonisation.to_record()`` plus
    ``clamped_pixels``) and ``masks`` the cloud mask used; both ``None`` for scenes committed
    before stores recorded them (see :mod:`datasets.store_radiometry`).
    """

    scene_id: str
    start: int
    count: int
    n_train: int
    n_val: int
    crs: str
    software_version: str
    source: str | None = None
    radiometry: dict[str, Any] | None = None
    masks: dict[str, Any] | None = None

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> SceneEntry:
        """An entry from its attrs; keys of other software versions are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in known})


@dataclass(frozen=True)
class Manifest:
    """Committed scenes in append order."""

    scenes: tuple[SceneEntry, ...] = ()

    @property
    def n_patches(self) -> int:
        """Number of committed patches: the visible length of the ``patch`` dimension."""
        return self.scenes[-1].start + self.scenes[-1].count if self.scenes else 0

    def entry(self, scene_id: str) -> SceneEntry | None:
        """The committed entry of ``scene_id``, or ``None``."""
        return next((entry for entry in self.scenes if entry.scene_id == scene_id), None)

    def has(self, scene_id: str, source: str | None = None, *, uri: str = "the store") -> bool:
        """Whether ``scene_id`` is committed, read from ``source`` when one is given.

        Raises:
            SceneIdConflictError: ``scene_id`` is committed from another source URI (two
                scenes share an id; neither is dropped silently).
        """
        entry = self.entry(scene_id)
        if entry is None:
            return False
        if source is not None and entry.source is not None and entry.source != source:
            raise SceneIdConflictError(
                f"scene id {scene_id!r} is already in patch store {uri}, tiled from "
                f"{entry.source}; {source} is another scene with the same id (ids come from "
                "the folder or file name). Rename one of them so their names differ, or tile "
                "it into another store. If it is the same scene moved to a new place, it is "
                "already in the store: leave it out."
            )
        return True

    def appended(self, entry: SceneEntry) -> Manifest:
        """A new manifest with ``entry`` after the current scenes."""
        if entry.start != self.n_patches:
            raise ValueError(f"scene must start at patch {self.n_patches}, not {entry.start}")
        return replace(self, scenes=(*self.scenes, entry))

    def prefix(self, n_patches: int) -> Manifest:
        """The manifest as it was when the store held ``n_patches`` patches."""
        return Manifest(tuple(e for e in self.scenes if e.start + e.count <= n_patches))

    def to_attrs(self) -> dict[str, Any]:
        """Root attrs ``scenes`` (list of entries) and ``crs`` (scene_id → WKT)."""
        return {
            "scenes": [asdict(entry) for entry in self.scenes],
            "crs": {entry.scene_id: entry.crs for entry in self.scenes},
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Manifest:
        """Read the manifest from a store's root attrs (empty if none)."""
        return cls(tuple(SceneEntry.from_attrs(entry) for entry in attrs.get("scenes", [])))


def manifest_version(params_attrs: Mapping[str, Any], manifest: Manifest) -> str:
    """Version of a plain Zarr store: BLAKE2b of its parameters and manifest (20 hex chars)."""
    payload = json.dumps(
        {"params": dict(params_attrs), "scenes": manifest.to_attrs()["scenes"]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.blake2b(payload.encode(), digest_size=10).hexdigest()


def with_version(
    history: list[dict[str, Any]], version: str, n_patches: int
) -> list[dict[str, Any]]:
    """The ``versions`` history attr with ``version`` (holding ``n_patches``) appended."""
    return [*history, {"version": version, "n_patches": n_patches}]


def resolve_version(
    history: list[dict[str, Any]], version: str | None, uri: str
) -> tuple[str, int]:
    """The version to read from a plain Zarr history, and its committed patch count.

    Args:
        history: the store's ``versions`` attr, oldest first.
        version: a version string, or ``None`` for the latest.
        uri: the store, for error messages.

    Returns:
        ``(version, n_patches)``.

    Raises:
        PatchStoreError: the store has no committed version, or ``version`` is not in its history.
    """
    if not history:
        raise PatchStoreError(
            f"patch store {uri} has no committed scene yet; tile a scene into it first "
            "(datasets.tiling.tile_scene or the tile-sentinel2 flow)"
        )
    if version is None:
        latest = history[-1]
        return str(latest["version"]), int(latest["n_patches"])
    for entry in history:
        if entry["version"] == version:
            return version, int(entry["n_patches"])
    recent = [entry["version"] for entry in history[-5:]]
    raise PatchStoreError(
        f"version {version!r} is not in patch store {uri}; its latest versions are {recent}. "
        "Check the version recorded by the training run and the store URI."
    )
