"""Appending scenes to a patch store, one all-or-nothing, idempotent commit per scene.

Appends to one local store are serialised by a lock file beside it, so threads and processes
may share a store. On object storage, Icechunk detects a concurrent commit and refuses it
(re-run: appends are idempotent); appends to a plain Zarr store take turns through a lease
beside the store (:mod:`datasets.lease`). After every append the scene is looked up in the
committed manifest: an append that lost a race raises :class:`StoreConflictError` (transient,
run it again) and never reports success.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

import icechunk
import numpy as np
import zarr
from zarr.abc.store import Store

from datasets import icechunk_store
from datasets.errors import StoreConflictError, StoreMismatchError
from datasets.lease import Lease, LeaseHeldError, LeaseLostError, this_process
from datasets.storage_errors import check_bucket, storage_errors
from datasets.store_backends import (
    DEFAULT_BACKEND,
    Backend,
    StorageOptions,
    detect_backend,
    local_lock,
    local_path,
    read_snapshot,
    root_attrs,
    zarr_store,
)
from datasets.store_layout import (
    PatchBatch,
    StoreParams,
    create_layout,
    open_layout,
    resize_patches,
    software_version,
    upgrade_layout,
    write_coords,
    write_pixels,
)
from datasets.store_version import Manifest, SceneEntry, manifest_version, with_version

#: Seconds an append to a plain Zarr store on object storage waits for another writer's turn.
LEASE_WAIT = 600.0

Commit = Callable[[zarr.Group, Manifest, str], str]
"""Publishes a written scene: ``commit(group, new_manifest, message) -> version``."""


@dataclass(frozen=True)
class AppendResult:
    """Outcome of one scene append; ``version`` is ``None`` only when nothing was written."""

    scene_id: str
    n_patches: int
    skipped_existing: bool
    version: str | None


class PatchStoreWriter:
    """Appends scenes to one store; each append is all-or-nothing and idempotent.

    Safe to use from several threads or processes on one local store (appends take turns); see
    the module docstring for object storage.

    Args:
        uri: local path or URL of the store; created on the first append.
        params: parameters every scene of the store shares.
        storage_options: fsspec/s3fs options.
        backend: backend of a new store (default :data:`DEFAULT_BACKEND`); an existing store
            keeps its own.

    Raises:
        StoreMismatchError: the store exists with other parameters or another backend.
        PatchStoreError: ``uri`` holds something that is not a patch store.
    """

    def __init__(
        self,
        uri: str,
        params: StoreParams,
        *,
        storage_options: StorageOptions = None,
        backend: Backend | None = None,
    ) -> None:
        self.uri = str(uri)
        self.params = params
        self.storage_options = storage_options
        existing = detect_backend(self.uri, storage_options)
        if existing is not None and backend is not None and backend != existing:
            raise StoreMismatchError(
                f"patch store {self.uri} uses the {existing!r} backend, not {backend!r}; "
                f"pass backend={existing!r} (or None), or choose a new store URI"
            )
        self.backend: Backend = existing or backend or DEFAULT_BACKEND
        if existing is not None:
            self._check_existing()
        else:  # a new store: its bucket must exist (nothing creates buckets)
            check_bucket(self.uri, storage_options)

    def _check_existing(self) -> None:
        store = self._read_only_tip()
        group = open_layout(store, self.uri) if store is not None else None
        if group is not None:
            self.params.check_matches(StoreParams.from_attrs(group.attrs), self.uri)

    def _read_only_tip(self) -> Store | None:
        """The latest state read-only, ``None`` while the store does not exist (creates nothing)."""
        if detect_backend(self.uri, self.storage_options) is None:
            return None
        if self.backend == "zarr":
            return zarr_store(self.uri, self.storage_options, read_only=True)
        return icechunk_store.readonly_store(self.uri, None, self.storage_options)[0]

    def committed(self) -> Manifest:
        """Scenes committed so far (empty for a new store)."""
        store = self._read_only_tip()
        group = open_layout(store, self.uri) if store is not None else None
        return self._manifest_in(group) if group is not None else Manifest()

    def has_scene(self, scene_id: str, source: str | None = None) -> bool:
        """Whether ``scene_id`` is already committed (from ``source``, when given).

        Raises:
            SceneIdConflictError: ``scene_id`` is committed from another source URI.
        """
        return self.committed().has(scene_id, source, uri=self.uri)

    def append_scene(
        self,
        scene_id: str,
        crs: str,
        batches: Iterable[PatchBatch],
        *,
        source: str | None = None,
        record: Callable[[], dict[str, Any]] | None = None,
    ) -> AppendResult:
        """Append one scene's patches as a single all-or-nothing commit.

        ``batches`` is consumed lazily, so a generator that reads the scene window by window keeps
        memory bounded; it is not consumed at all if the scene is already committed.

        Args:
            scene_id: unique scene identifier.
            crs: the scene's CRS as WKT.
            batches: the scene's patches, in any number of batches.
            source: the URI the scene is read from, recorded with it. Appending the same
                ``scene_id`` from the same ``source`` again is a no-op; from another source it
                is refused. Scenes committed without a source match any.
            record: called once ``batches`` is consumed; returns the scene entry's
                ``radiometry`` and ``masks`` records (see :class:`SceneEntry`).

        Returns:
            The result; ``n_patches == 0`` (and ``version`` ``None``) if ``batches`` was empty,
            in which case nothing was written.

        Raises:
            StoreMismatchError: the store was written with other parameters.
            SceneIdConflictError: ``scene_id`` is committed from another source.
            StoreConflictError: a concurrent writer committed first (Icechunk); run it again.
            PatchStoreError: bad input.
        """
        if self.has_scene(scene_id, source):
            return AppendResult(
                scene_id, 0, True, read_snapshot(self.uri, None, self.storage_options).version
            )
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            return AppendResult(scene_id, 0, False, None)
        with (
            storage_errors(self.uri, self.storage_options),
            local_lock(local_path(self.uri)),
            self._turn() as lease,
            self._session(lease) as (store, commit),
        ):
            result = self._append_in(
                store, commit, scene_id, crs, source, chain([first], iterator), record
            )
        if result is None:
            return AppendResult(
                scene_id, 0, True, read_snapshot(self.uri, None, self.storage_options).version
            )
        self._check_committed(scene_id, source, result)
        return result

    def _check_committed(self, scene_id: str, source: str | None, result: AppendResult) -> None:
        """Refuse to report an append whose scene is not in the committed manifest.

        Raises:
            StoreConflictError: another writer's commit replaced this one (transient).
        """
        entry = self.committed().entry(scene_id)
        if entry is None or entry.count != result.n_patches or entry.source != source:
            raise StoreConflictError(
                f"scene {scene_id} was written to patch store {self.uri} but is not in its "
                "committed manifest: another writer committed over it. Appends are idempotent: "
                "run it again (the tile-sentinel2 flow retries by itself)"
            )

    @contextmanager
    def _turn(self) -> Iterator[Lease | None]:
        """This writer's turn on a plain Zarr store on object storage (a lease); else nothing
        (Icechunk refuses racing commits itself, local stores take turns under a lock file)."""
        if self.backend != "zarr" or local_path(self.uri) is not None:
            yield None
            return
        parent, _, name = self.uri.rstrip("/").rpartition("/")
        lease = Lease(
            f"{parent}/.{name}.lease",
            # one owner per append: two appends of one process must not share a turn
            f"{this_process()}, append {random.getrandbits(32):08x}",
            what=f"plain Zarr patch store {self.uri}",
            storage_options=self.storage_options,
        )
        try:
            lease.acquire(wait=LEASE_WAIT, poll=1.0 + random.random())
        except LeaseHeldError as err:
            raise StoreConflictError(
                f"{err}. Waited {LEASE_WAIT:.0f} s for that writer; run the append again"
            ) from err
        try:
            yield lease
        finally:
            lease.release()

    def _append_in(
        self,
        store: Store,
        commit: Commit,
        scene_id: str,
        crs: str,
        source: str | None,
        batches: Iterable[PatchBatch],
        record: Callable[[], dict[str, Any]] | None = None,
    ) -> AppendResult | None:
        """Write and commit inside a session; ``None`` if the scene turned out to be committed."""
        group = open_layout(store, self.uri, mode="r+")
        if group is None:
            group = create_layout(store, self.params)
        upgrade_layout(group)
        self.params.check_matches(StoreParams.from_attrs(group.attrs), self.uri)
        manifest = self._manifest_in(group)
        # Another writer may have committed this scene since the caller's check.
        if manifest.has(scene_id, source, uri=self.uri):
            return None
        start = end = manifest.n_patches
        resize_patches(group, start)
        coords: dict[str, list[np.ndarray]] = {
            "split": [],
            "row_off": [],
            "col_off": [],
            "transform": [],
            "clear_fraction": [],
        }
        for batch in batches:
            batch.check(self.params)
            end = self._write_batch(group, end, batch)
            for name, column in coords.items():
                column.append(batch.clear if name == "clear_fraction" else getattr(batch, name))
        joined = {name: np.concatenate(column) for name, column in coords.items()}
        write_coords(group, start, scene_id, **joined)
        n_val = int(np.count_nonzero(joined["split"] == "val"))
        entry = SceneEntry(
            scene_id,
            start,
            end - start,
            end - start - n_val,
            n_val,
            crs,
            software_version(),
            source,
            **(record() if record is not None else {}),
        )
        version = commit(group, manifest.appended(entry), f"append scene {scene_id}")
        return AppendResult(scene_id, end - start, False, version)

    def _write_batch(self, group: zarr.Group, start: int, batch: PatchBatch) -> int:
        return write_pixels(group, start, batch)

    def _manifest_in(self, group: zarr.Group) -> Manifest:
        attrs = root_attrs(group)
        manifest = Manifest.from_attrs(attrs)
        if self.backend == "zarr":
            history = attrs.get("versions", [])
            manifest = manifest.prefix(int(history[-1]["n_patches"]) if history else 0)
        return manifest

    @contextmanager
    def _session(self, lease: Lease | None) -> Iterator[tuple[Store, Commit]]:
        """A writable store and the function that commits a scene written to it."""
        if self.backend == "zarr":
            store = zarr_store(self.uri, self.storage_options, read_only=False)

            def commit_zarr(group: zarr.Group, manifest: Manifest, message: str) -> str:
                if lease is not None:
                    try:  # still this writer's turn (a stalled writer's lease may have expired)
                        lease.renew()
                    except LeaseLostError as err:
                        raise StoreConflictError(f"{err}; run the append again") from err
                version = manifest_version(self.params.to_attrs(), manifest)
                history = with_version(
                    root_attrs(group).get("versions", []), version, manifest.n_patches
                )
                # One attrs write publishes the scene: a crash before it leaves it invisible.
                group.attrs.update({**manifest.to_attrs(), "versions": history})
                return version

            yield store, commit_zarr
            return
        repo = self._open_or_create_repo()
        session = icechunk_store.writable_session(repo)

        def commit_icechunk(group: zarr.Group, manifest: Manifest, message: str) -> str:
            group.attrs.update(manifest.to_attrs())
            return icechunk_store.commit(session, message, self.uri)

        yield session.store, commit_icechunk

    def _open_or_create_repo(self) -> Any:
        try:
            return icechunk_store.open_or_create(self.uri, self.storage_options)
        except icechunk.IcechunkError as err:
            # The first appends to a new remote store race to create it (local ones take turns
            # under the lock); whoever lost opens what the winner created, or tries again later.
            if icechunk_store.exists(self.uri, self.storage_options):
                return icechunk_store.open_or_create(self.uri, self.storage_options)
            raise StoreConflictError(
                f"patch store {self.uri} could not be created "
                f"({icechunk_store.first_line(err)}); if another writer is creating it right "
                "now, run the append again"
            ) from err


def append_scene_patches(
    uri: str,
    params: StoreParams,
    scene_id: str,
    crs: str,
    batches: Iterable[PatchBatch],
    *,
    storage_options: StorageOptions = None,
    backend: Backend | None = None,
    source: str | None = None,
) -> AppendResult:
    """Append one scene to the store at ``uri``; see :meth:`PatchStoreWriter.append_scene`."""
    writer = PatchStoreWriter(uri, params, storage_options=storage_options, backend=backend)
    return writer.append_scene(scene_id, crs, batches, source=source)
