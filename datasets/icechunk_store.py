"""Icechunk repositories as patch stores: storage from a URI, sessions, commits.

An Icechunk repository gives the patch store transactions: an append writes into a session that
nothing else sees until ``commit``, which returns the snapshot id used as the store version. Only
the ``main`` branch is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import icechunk
from zarr.abc.store import Store

from datasets.errors import PatchStoreError, StoreConflictError
from datasets.storage_errors import storage_error

BRANCH = "main"

# Icechunk warns on every local repository that local commits are not safe concurrently; the
# patch store serialises local commits with a lock file, so the warning would only be noise.
# A user's own ICECHUNK_LOG setting wins.
if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")


def storage_for(uri: str, storage_options: Mapping[str, Any] | None = None) -> icechunk.Storage:
    """Icechunk storage for a local path or an ``s3://bucket/prefix`` URI.

    Args:
        uri: local directory (``file://`` allowed) or ``s3://bucket/prefix``.
        storage_options: s3fs-style options: ``endpoint_url``, ``key``, ``secret``, ``token``,
            ``anon``, ``client_kwargs={"region_name": ...}``; credentials come from the
            environment when no ``key`` is given.

    Raises:
        PatchStoreError: the URI scheme is neither local nor ``s3``.
    """
    parsed = urlparse(str(uri))
    if parsed.scheme in ("", "file"):
        return icechunk.local_filesystem_storage(parsed.path if parsed.scheme else str(uri))
    if parsed.scheme not in ("s3", "s3a"):
        raise PatchStoreError(
            f"Icechunk patch stores live on a local path or s3://, not {uri!r}; "
            "use backend='zarr' for other fsspec URIs"
        )
    options = dict(storage_options or {})
    endpoint = options.get("endpoint_url") or options.get("client_kwargs", {}).get("endpoint_url")
    region = options.get("client_kwargs", {}).get("region_name") or options.get("region_name")
    has_key = "key" in options
    return icechunk.s3_storage(
        bucket=parsed.netloc,
        prefix=parsed.path.strip("/") or None,
        region=region or ("us-east-1" if endpoint else None),
        endpoint_url=endpoint,
        # Custom endpoints (MinIO, moto, Ceph) rarely serve virtual-host-style bucket names.
        force_path_style=endpoint is not None,
        allow_http=bool(endpoint and endpoint.startswith("http://")),
        access_key_id=options.get("key"),
        secret_access_key=options.get("secret"),
        session_token=options.get("token"),
        anonymous=bool(options.get("anon", False)) or None,
        from_env=None if has_key or options.get("anon") else True,
    )


def exists(uri: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether an Icechunk repository exists at ``uri``."""
    return bool(icechunk.Repository.exists(storage_for(uri, storage_options)))


def open_or_create(uri: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The Icechunk repository at ``uri``, created empty if absent."""
    storage = storage_for(uri, storage_options)
    return icechunk.Repository.open_or_create(storage)


def readonly_store(
    uri: str, version: str | None, storage_options: Mapping[str, Any] | None = None
) -> tuple[Store, str]:
    """A read-only Zarr store at ``version`` (``None``: the tip of ``main``), and its snapshot id.

    Raises:
        PatchStoreError: no repository at ``uri``, or no snapshot ``version`` in it.
    """
    storage = storage_for(uri, storage_options)
    try:
        repo = icechunk.Repository.open(storage)
    except icechunk.IcechunkError as err:
        storage_failure = storage_error(err, uri, storage_options)
        if storage_failure is not None:
            raise storage_failure from err
        raise PatchStoreError(
            f"no Icechunk patch store at {uri}: {first_line(err)}. Check the URI and "
            "storage_options."
        ) from err
    try:
        if version is None:
            session = repo.readonly_session(branch=BRANCH)
        else:
            session = repo.readonly_session(snapshot_id=version)
    except icechunk.IcechunkError as err:
        raise PatchStoreError(
            f"version {version!r} is not a snapshot of the Icechunk patch store {uri}: "
            f"{first_line(err)}. "
            "Check the version recorded by the training run and the store URI."
        ) from err
    return session.store, str(session.snapshot_id)


def first_line(err: BaseException) -> str:
    """The headline of an Icechunk error (the rest is Rust context, for developers)."""
    lines = [line.strip(" x|") for line in str(err).splitlines() if line.strip(" x|")]
    return lines[0] if lines else type(err).__name__


def writable_session(repo: Any) -> Any:
    """A new writable session on ``main``."""
    return repo.writable_session(BRANCH)


def commit(session: Any, message: str, uri: str) -> str:
    """Commit ``session`` and return the new snapshot id.

    Raises:
        StoreConflictError: another writer committed to ``main`` since the session began.
    """
    try:
        return str(session.commit(message))
    except icechunk.ConflictError as err:
        raise StoreConflictError(
            f"another writer committed to patch store {uri} during this append "
            f"({first_line(err)}); appends are idempotent: run it again, and serialise appends "
            "to one store (e.g. a concurrency limit of 1 on the tiling task)"
        ) from err
