"""Errors raised by the data layer; each message says what was wrong and what to do."""

from __future__ import annotations

import errno
import sys


class S2SRDataError(Exception):
    """Base class for every data-layer error of s2-srgan."""


class TransientError(S2SRDataError):
    """A failure that another attempt may not meet (network, a busy server, a concurrent
    commit); the operation is safe to run again."""


class SceneReadError(S2SRDataError):
    """A scene cannot be read as asked (missing band, no CRS, mismatched grids, corrupt file...)."""


class SceneFetchError(SceneReadError, TransientError):
    """A scene's files could not be fetched (connection failed, S3 busy or throttling)."""


class HarmonisationError(SceneReadError):
    """How a scene's digital numbers become reflectance ×10000 cannot be told safely (a product
    of processing baseline 04.00 or later without metadata, an 8-bit raster, unreadable
    product metadata); the message names the parameter to set."""


class MaskError(SceneReadError):
    """A scene's cloud mask (SCL, MSK_CLASSI) cannot be used as asked."""


class SampleDataError(S2SRDataError):
    """The sample data could not be fetched or failed its checksum."""


class TilingError(S2SRDataError):
    """A scene cannot be cut into patches with the requested parameters."""


class PatchStoreError(S2SRDataError):
    """The patch store is missing, empty, or inconsistent with what is asked of it."""


class StoreMismatchError(PatchStoreError):
    """A scene is appended to a store written with a different scale, band set or patch size."""


class StoreConflictError(PatchStoreError, TransientError):
    """Another writer committed to the store during an append; the append can run again."""


class SceneIdConflictError(PatchStoreError):
    """A scene's id is already in the store for a scene read from another URI."""


class InferenceError(S2SRDataError):
    """A checkpoint does not fit the scene it is asked to super-resolve (bands, scale)."""


class OutputError(S2SRDataError):
    """An output cannot be written (folder not writable, file exists, upload failed...)."""


# OSErrors that say what is wrong with the request itself, which another attempt repeats. The
# errno values are those s3fs gives S3 error codes such as InvalidArgument or PermanentRedirect.
_PERMANENT_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
_PERMANENT_ERRNOS = {
    errno.EINVAL,
    errno.EPERM,
    errno.EACCES,
    errno.ENOSYS,
    errno.ENAMETOOLONG,
    errno.ENOTEMPTY,
    errno.EMSGSIZE,
    errno.ENOSPC,
    getattr(errno, "EREMCHG", errno.ENOENT),
}


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` may not recur when the operation is run again.

    True for :class:`TransientError` (network failures while reading a scene, a lost commit
    race) and for raw network errors (``ConnectionError``, ``TimeoutError``, botocore's
    connection errors, other ``OSError`` s such as S3's "SlowDown"); False for every other
    data-layer error and for OSErrors about the request itself (missing file, access denied,
    invalid argument).
    """
    if isinstance(err, TransientError):
        return True
    if isinstance(err, S2SRDataError):
        return False
    gdal = sys.modules.get("rasterio.errors")  # only loaded (and raised) once rasterio is in use
    if gdal is not None and isinstance(err, gdal.RasterioError):
        # GDAL's errors are OSErrors too; the scene readers classify them, with the file in mind.
        return False
    if isinstance(err, OSError):
        return not isinstance(err, _PERMANENT_OS_ERRORS) and err.errno not in _PERMANENT_ERRNOS
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        return False
    return isinstance(err, BotoConnectionError | HTTPClientError)
