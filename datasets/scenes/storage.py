"""Where scene files live: a local folder or an ``s3://`` prefix, listed and opened alike.

Listing goes through the filesystem (``os`` locally, s3fs for S3); pixels go through rasterio/GDAL.
For S3 both take the same s3fs-style ``storage_options`` (``endpoint_url``, ``key``, ``secret``,
``token``, ``anon``, ``client_kwargs={"region_name": ...}``); for GDAL they become an
:class:`rasterio.session.AWSSession` plus ``AWS_S3_ENDPOINT``/``AWS_HTTPS``/``AWS_VIRTUAL_HOSTING``
options that live only inside :meth:`SceneStore.env`, never in the process environment.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.session import AWSSession

from datasets.errors import SceneFetchError, SceneReadError, is_transient
from datasets.storage_errors import (
    BucketMissingError,
    StorageAccessDenied,
    StorageError,
    access_denied,
    bucket_missing,
    check_bucket,
    storage_error,
)

# How S3 and GDAL word a refused request; GDAL passes on the server's message when there is one.
_DENIED = (
    "accessdenied",
    "access denied",
    "invalidaccesskeyid",
    "access key id you provided does not exist",
    "signaturedoesnotmatch",
    "signature we calculated does not match",
    "response code: 403",
)
# How GDAL and S3 word a failure of the network or of a busy server rather than of the file.
_UNAVAILABLE = (
    "curl error",
    "response code: 5",
    "timed out",
    "timeout",
    "connection",
    "reduce your request rate",
    "slowdown",
    "slow down",
    "service unavailable",
    "internal error",
    "try again",
)


@dataclass(frozen=True)
class Entry:
    """One item of a folder listing: base name, full URI, and whether it is a folder."""

    name: str
    uri: str
    is_dir: bool


def is_s3(uri: str) -> bool:
    """True for ``s3://bucket/key`` URIs."""
    return uri.startswith("s3://")


def gdal_message(err: BaseException) -> str:
    """The most specific message of a rasterio error (rasterio wraps GDAL's in ``__cause__``)."""
    while err.__cause__ is not None and "previous exception" in str(err):
        err = err.__cause__
    return str(err).strip().rstrip(".")


def looks_unavailable(err: BaseException) -> bool:
    """Whether a GDAL error, or any error it wraps, reads like a network or server failure."""
    current: BaseException | None = err
    while current is not None:
        if any(token in str(current).lower() for token in _UNAVAILABLE):
            return True
        current = current.__cause__
    return False


def fetch_failed(what: str, reason: str | BaseException) -> SceneFetchError:
    """The error for a request that failed for reasons another attempt may not meet."""
    return SceneFetchError(
        f"{what}: {reason}. The network or the S3 server failed; run again (the tile-sentinel2 "
        "flow retries by itself). If it keeps failing, check storage_options['endpoint_url'] "
        "and the network."
    )


def _s3_failure(
    what: str, uri: str, err: Exception, storage_options: Mapping[str, Any] | None = None
) -> SceneReadError | StorageError | None:
    """The error to raise for an s3fs/botocore failure, ``None`` for errors of another kind:
    access, bucket and endpoint failures as every entry point says them (StorageError)."""
    storage_failure = storage_error(err, uri, storage_options)
    if storage_failure is not None:
        return storage_failure
    if is_transient(err):
        return fetch_failed(what, err)
    if isinstance(err, OSError):
        return SceneReadError(
            f"{what}: {err}. Check the URI, storage_options['endpoint_url'] and the credentials."
        )
    return None


@contextlib.contextmanager
def _s3_errors(
    what: str, uri: str, storage_options: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Turn an s3fs/botocore failure into the error that says what to do (a
    :class:`~datasets.storage_errors.StorageError` for access, bucket and endpoint failures, else
    a :class:`SceneReadError`); ``FileNotFoundError`` passes through (callers decide what a
    missing object means)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as err:
        failure = _s3_failure(what, uri, err, storage_options)
        if failure is None:
            raise
        raise failure from err


class SceneStore:
    """Lists and opens raster files below a local folder or an S3 prefix.

    Args:
        storage_options: s3fs-style options for ``s3://`` URIs; ignored for local paths.
        remote: True when the URIs served are ``s3://``; GDAL is then configured for S3.
    """

    def __init__(
        self, storage_options: Mapping[str, Any] | None = None, *, remote: bool = False
    ) -> None:
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self.remote = remote
        self._fs: Any = None
        self._session: AWSSession | None = None

    @classmethod
    def for_uri(
        cls, uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> SceneStore:
        """A store suited to ``uri`` (S3 when it starts with ``s3://``)."""
        return cls(storage_options, remote=is_s3(os.fspath(uri)))

    def normalize(self, uri: str | os.PathLike[str]) -> str:
        """Canonical form of ``uri``: an absolute local path, or ``s3://bucket/key`` without a
        trailing slash."""
        text = os.fspath(uri)
        if is_s3(text):
            return "s3://" + text[len("s3://") :].strip("/")
        return str(Path(text).expanduser().absolute())

    @property
    def s3(self) -> Any:
        """The s3fs filesystem, created on first use without s3fs's caches so that listings
        see objects written since."""
        if self._fs is None:
            import s3fs

            options = {"skip_instance_cache": True, "use_listings_cache": False}
            self._fs = s3fs.S3FileSystem(**{**options, **self.storage_options})
        return self._fs

    def kind(self, uri: str) -> str | None:
        """``"dir"``, ``"file"`` or ``None`` when nothing exists at ``uri``.

        Raises:
            SceneReadError: S3 refused the request (credentials); :class:`SceneFetchError`
                when it could not be reached or was busy.
        """
        if not is_s3(uri):
            path = Path(uri)
            return "dir" if path.is_dir() else "file" if path.is_file() else None
        try:
            with _s3_errors(f"Could not query {uri}", uri, self.storage_options):
                info = self.s3.info(uri)
        except FileNotFoundError:
            check_bucket(uri, self.storage_options)  # a missing bucket is said as such
            return None
        return "dir" if info.get("type") == "directory" else "file"

    def listdir(self, uri: str) -> list[Entry]:
        """Entries directly inside the folder ``uri``, sorted by name.

        Raises:
            FileNotFoundError: ``uri`` does not exist.
            SceneReadError: as :meth:`kind`.
        """
        if not is_s3(uri):
            with os.scandir(uri) as it:
                entries = [Entry(e.name, str(Path(uri) / e.name), e.is_dir()) for e in it]
        else:
            with _s3_errors(f"Could not list {uri}", uri, self.storage_options):
                items = self.s3.ls(uri, detail=True)
            entries = []
            for item in items:
                name = item["name"].rstrip("/").rsplit("/", 1)[-1]
                full = "s3://" + item["name"].rstrip("/")
                if full != uri:
                    entries.append(Entry(name, full, item.get("type") == "directory"))
        return sorted(entries, key=lambda e: e.name)

    def open_file(self, uri: str) -> IO[bytes]:
        """A seekable binary file object of ``uri`` (S3 objects are read by ranges).

        Raises:
            FileNotFoundError: nothing exists at ``uri``.
            SceneReadError: as :meth:`kind`.
        """
        if not is_s3(uri):
            return open(uri, "rb")
        with _s3_errors(f"Could not open {uri}", uri, self.storage_options):
            return self.s3.open(uri, "rb")  # type: ignore[no-any-return]

    def read_bytes(self, uri: str) -> bytes:
        """The whole content of the (small) file ``uri``.

        Raises:
            FileNotFoundError: nothing exists at ``uri``.
            SceneReadError: as :meth:`kind`.
        """
        with self.open_file(uri) as f:
            return f.read()

    def join(self, uri: str, *names: str) -> str:
        """``uri`` with ``names`` appended as path components."""
        if is_s3(uri):
            return "/".join([uri, *names])
        return str(Path(uri).joinpath(*names))

    @contextlib.contextmanager
    def env(self) -> Iterator[None]:
        """GDAL configuration for reading from this store; a no-op for local files."""
        if not self.remote:
            yield
            return
        if self._session is None:
            # Built once: a boto3 session costs milliseconds, and tiling reads many windows.
            self._session = self._aws_session()
        with rasterio.Env(session=self._session, **self._gdal_s3_options()):
            yield

    def _aws_session(self) -> AWSSession:
        opts = self.storage_options
        region = (opts.get("client_kwargs") or {}).get("region_name")
        if opts.get("anon"):
            return AWSSession(aws_unsigned=True, region_name=region)
        return AWSSession(
            aws_access_key_id=opts.get("key"),
            aws_secret_access_key=opts.get("secret"),
            aws_session_token=opts.get("token"),
            region_name=region,
            profile_name=opts.get("profile"),
        )

    def _gdal_s3_options(self) -> dict[str, str]:
        opts = self.storage_options
        # GDAL would otherwise list the whole prefix on every open, which is slow on S3.
        config = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
        # Same precedence as s3fs/botocore, so listing and reading talk to the same server.
        endpoint = (
            opts.get("endpoint_url")
            or (opts.get("client_kwargs") or {}).get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint:
            parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            config["AWS_S3_ENDPOINT"] = parsed.netloc + parsed.path.rstrip("/")
            config["AWS_HTTPS"] = "NO" if parsed.scheme == "http" else "YES"
            # Custom endpoints (MinIO, moto, Ceph) rarely serve bucket.host virtual hosting.
            config["AWS_VIRTUAL_HOSTING"] = "FALSE"
        return config

    def open_raster(self, uri: str) -> DatasetReader:
        """Open one raster file with rasterio; the caller closes it.

        Raises:
            SceneReadError: The file does not exist, access is denied, or GDAL cannot parse it;
                :class:`SceneFetchError` when the network or the S3 server failed.
        """
        try:
            with self.env(), warnings.catch_warnings():
                # A missing CRS is reported by the caller as a SceneReadError with advice.
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                return rasterio.open(uri)
        except RasterioError as err:
            message = gdal_message(err)
            if any(token in message.lower() for token in _DENIED):
                raise StorageAccessDenied(access_denied(uri, self.storage_options), uri) from err
            if "bucket does not exist" in message:
                raise BucketMissingError(bucket_missing(uri, self.storage_options), uri) from err
            if self.remote and looks_unavailable(err):
                raise fetch_failed(f"Cannot open {uri}", message) from err
            raise SceneReadError(
                f"Cannot read {uri} as a raster: {message}. The file may be truncated or corrupt "
                "(re-download or re-export it), or not a format GDAL reads (GeoTIFF/COG/JPEG2000)."
            ) from err
