"""Where a run's files live: one storage root, local or ``s3://``."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec

DEFAULT_STORAGE = ".s2sr"
DEFAULT_STORE_NAME = "sentinel2.zarr"


def storage_root(storage: str | None = None) -> str:
    """The storage root: the argument, else ``$S2SR_STORAGE``, else ``./.s2sr`` (absolute)."""
    root = storage or os.environ.get("S2SR_STORAGE") or DEFAULT_STORAGE
    if "://" in root:
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


def join(root: str, *parts: str) -> str:
    """Join path parts under a local or URL root."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def default_store(storage: str | None = None) -> str:
    """The patch store written by ``tile-sentinel2`` and read by ``train-srgan`` by default."""
    return join(storage_root(storage), "patches", DEFAULT_STORE_NAME)


def run_dir(storage: str | None, run_key: str) -> str:
    """``<storage>/runs/<run-key>``: checkpoints, logs and previews of one training run."""
    return join(storage_root(storage), "runs", run_key)


def put_text(uri: str, text: str) -> None:
    """Write a text file whole (local: under a temporary name, then renamed; remote: one
    upload), so a reader never sees half of it."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.tmp"
    with fs.open(tmp, "w") as f:
        f.write(text)
    fs.mv(tmp, path)
