"""Where an output file goes: a local path (atomic rename) or ``s3://`` (upload).

:func:`check_output` fails early, before hours of work, when an output cannot be written;
:func:`publish` moves a finished local file to its output location in one step, so a reader
never sees a partial file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets.errors import OutputError
from datasets.storage_errors import check_bucket, storage_error, storage_errors

# Outputs are asked for from Python, the flows and the CLI; name the way to overwrite in each.
_OVERWRITE = "overwrite=True (--overwrite on the s2-srgan command line)"


def is_remote(uri: str) -> bool:
    """Whether ``uri`` is a URL rather than a local path (``file://`` counts as local)."""
    return "://" in uri and not uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The absolute local path of ``uri`` (a path or ``file://`` URL)."""
    return Path(uri.removeprefix("file://")).expanduser().absolute()


def _s3(storage_options: Mapping[str, Any] | None) -> Any:
    import s3fs

    return s3fs.S3FileSystem(**dict(storage_options or {}))


def check_output(
    out: str, *, overwrite: bool = False, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Fail early, before any work, when ``out`` cannot be written.

    Creates missing local parent folders; writes and removes a probe file next to ``out``.

    Raises:
        OutputError: ``out`` exists (and not ``overwrite``), is a folder, or its folder cannot
            be created or written.
        StorageError: ``out`` is on S3 and its bucket does not exist, the access is refused,
            or the endpoint does not answer (a 403 is never read as a missing bucket).
    """
    if is_remote(out):
        if not out.startswith("s3://"):
            raise OutputError(f"output {out}: only local paths and s3:// URIs are supported")
        check_bucket(out, storage_options)
        with storage_errors(out, storage_options):
            exists = _s3(storage_options).exists(out)
        if exists and not overwrite:
            raise OutputError(f"output {out} exists; remove it, or set {_OVERWRITE} to replace it")
        return
    path = local_path(out)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path}/sr.tif")
    if path.exists() and not overwrite:
        raise OutputError(f"output {path} exists; remove it, or set {_OVERWRITE} to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.probe"):
            pass
    except OSError as err:
        raise OutputError(
            f"output folder {path.parent} is not writable ({err.strerror or err}); choose "
            "another output path or fix its permissions"
        ) from err


def publish(
    local: Path,
    out: str,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Move the finished file ``local`` to ``out`` (rename, or upload for ``s3://``).

    A local rename within one file system is atomic; an S3 object appears only once its upload
    completed. Returns ``out`` (an absolute path for local outputs).

    Raises:
        OutputError: The rename or upload failed, or ``out`` appeared meanwhile and
            ``overwrite`` is False.
    """
    if is_remote(out):
        try:
            _s3(storage_options).put_file(str(local), out)
        except Exception as err:  # s3fs/botocore raise many types for access problems
            failure = storage_error(err, out, storage_options)
            raise failure or OutputError(f"uploading {out} failed: {err}") from err
        return out
    path = local_path(out)
    if path.exists() and not overwrite:
        raise OutputError(f"output {path} appeared meanwhile; set {_OVERWRITE} to replace it")
    try:
        local.replace(path)
    except OSError as err:
        raise OutputError(f"moving the finished file to {path} failed: {err}") from err
    return str(path)
