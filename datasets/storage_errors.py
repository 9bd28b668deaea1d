"""What is wrong with a storage location, in one line with the fix, for every entry point.

Object storage fails in four ways a user can fix, and each has its own error class:

- :class:`StorageAccessDenied`: the server refused the credentials or the policy forbids the
  request (HTTP 403). Never reported as "does not exist": S3 answers 403 for a missing bucket
  too when the credentials are wrong.
- :class:`BucketMissingError`: the bucket does not exist (nothing creates buckets: a misspelt
  name must not become a new bucket).
- :class:`PrefixMissingError`: the bucket exists, nothing is stored under the prefix.
- :class:`EndpointUnreachableError`: the S3 endpoint does not answer (transient: retried).

:func:`storage_error` turns the raw error of s3fs, botocore or Icechunk into one of them;
:func:`check_bucket` and :func:`diagnose_missing` ask the server when an operation found
nothing, to tell a missing bucket from a missing prefix. Messages name the URI, the endpoint
and where the credentials came from, never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from datasets.errors import S2SRDataError, TransientError

StorageOptions = Mapping[str, Any] | None

# How S3, s3fs and Icechunk word the failures (Icechunk only passes on the server's text).
_DENIED_CODES = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
_DENIED_TEXT = ("accessdenied", "invalidaccesskeyid", "signaturedoesnotmatch", "forbidden")
_NO_BUCKET_TEXT = ("nosuchbucket", "bucket does not exist", "specified bucket does not exist")
_UNREACHABLE_TEXT = (
    "could not connect to the endpoint",
    "connection refused",
    "connect timeout",
    "dispatch failure",
    "cannot connect to host",
    "name or service not known",
    "temporary failure in name resolution",
)


class StorageError(S2SRDataError):
    """A storage location cannot be used as asked; the message says why and what to do."""

    def __init__(self, message: str, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class StorageAccessDenied(StorageError):
    """The server refused the request (wrong or expired credentials, or a policy)."""


class BucketMissingError(StorageError):
    """The bucket of the URI does not exist."""


class PrefixMissingError(StorageError):
    """The bucket exists but nothing is stored under the URI's prefix."""


class EndpointUnreachableError(StorageError, TransientError):
    """The storage endpoint did not answer (network, DNS, server down)."""


def is_s3(uri: str) -> bool:
    """Whether ``uri`` is on S3 (``s3://`` or ``s3a://``)."""
    return str(uri).startswith(("s3://", "s3a://"))


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``("bucket", "key/inside")`` of an ``s3://`` URI."""
    path = str(uri).split("://", 1)[1]
    bucket, _, key = path.partition("/")
    return bucket, key.strip("/")


def endpoint(storage_options: StorageOptions = None) -> str:
    """The S3 endpoint requests go to, as s3fs/botocore choose it."""
    options = dict(storage_options or {})
    return str(
        options.get("endpoint_url")
        or (options.get("client_kwargs") or {}).get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or "AWS S3"
    )


def _key_id_tail(key_id: str) -> str:
    return f"access key id ending {key_id[-4:]}" if len(key_id) > 8 else "access key id"


def credential_source(storage_options: StorageOptions = None) -> str:
    """Where the credentials in use come from (never their values, at most a key id's tail)."""
    options = dict(storage_options or {})
    if options.get("anon"):
        return "anonymous access (anon=True)"
    if options.get("key"):
        return f"the key pair in storage_options ({_key_id_tail(str(options['key']))})"
    if options.get("profile"):
        return f"profile {options['profile']!r} of ~/.aws"
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        tail = _key_id_tail(os.environ["AWS_ACCESS_KEY_ID"])
        return f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of the environment ({tail})"
    if os.environ.get("AWS_PROFILE"):
        return f"AWS_PROFILE={os.environ['AWS_PROFILE']} (~/.aws)"
    return "the default AWS credential chain (~/.aws files or the instance role)"


def access_denied(uri: str, storage_options: StorageOptions = None, code: str = "403") -> str:
    """The one-line message for a refused request."""
    return (
        f"access to {uri} denied ({code}) at {endpoint(storage_options)} with "
        f"{credential_source(storage_options)}: check these credentials (secret key, session "
        "token) and that the bucket policy allows them to list, read and write it"
    )


def bucket_missing(uri: str, storage_options: StorageOptions = None) -> str:
    """The one-line message for a bucket that does not exist."""
    bucket = bucket_and_key(uri)[0]
    return (
        f"bucket {bucket!r} of {uri} does not exist at {endpoint(storage_options)}: check the "
        "bucket name (s2-srgan never creates buckets; create it first if it is a new one)"
    )


def prefix_missing(uri: str, storage_options: StorageOptions = None) -> str:
    """The one-line message for a prefix with nothing under it."""
    bucket = bucket_and_key(uri)[0]
    return (
        f"{uri} does not exist (bucket {bucket!r} exists, nothing is stored under this "
        "prefix): check the path"
    )


def unreachable(uri: str, storage_options: StorageOptions = None) -> str:
    """The one-line message for an endpoint that does not answer."""
    return (
        f"cannot reach the S3 endpoint {endpoint(storage_options)} for {uri}: check "
        "endpoint_url (or AWS_ENDPOINT_URL) and the network, then run again"
    )


def _client_error_code(err: BaseException) -> str | None:
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error") or {}
    code = error.get("Code")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if status == 403 and code not in _DENIED_CODES:
        return "403"
    return str(code) if code is not None else None


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_failure(err: BaseException) -> bool:
    try:
        from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        return isinstance(err, ConnectionError)
    return isinstance(err, EndpointConnectionError | ConnectTimeoutError | ConnectionRefusedError)


def storage_error(
    err: BaseException, uri: str, storage_options: StorageOptions = None
) -> StorageError | None:
    """The :class:`StorageError` that ``err`` (raised while using ``uri``) stands for.

    Looks through the error's causes for S3 error codes (botocore, s3fs), connection failures
    and the server messages Icechunk passes on. Returns ``None`` for errors of other kinds and
    for local paths.
    """
    if isinstance(err, StorageError):
        return err
    if not is_s3(uri):
        return None
    for current in _chain(err):
        code = _client_error_code(current)
        if code in _DENIED_CODES:
            return StorageAccessDenied(access_denied(uri, storage_options, code or "403"), uri)
        if code == "NoSuchBucket":
            return BucketMissingError(bucket_missing(uri, storage_options), uri)
        if _is_connection_failure(current):
            return EndpointUnreachableError(unreachable(uri, storage_options), uri)
        if isinstance(current, PermissionError):
            return StorageAccessDenied(access_denied(uri, storage_options), uri)
    text = " ".join(str(e) for e in _chain(err)).lower()
    if any(token in text for token in _NO_BUCKET_TEXT):
        return BucketMissingError(bucket_missing(uri, storage_options), uri)
    if any(token in text for token in _DENIED_TEXT) or "status: 403" in text:
        return StorageAccessDenied(access_denied(uri, storage_options), uri)
    if any(token in text for token in _UNREACHABLE_TEXT):
        return EndpointUnreachableError(unreachable(uri, storage_options), uri)
    return None


@contextmanager
def storage_errors(uri: str, storage_options: StorageOptions = None) -> Iterator[None]:
    """Raise storage failures inside the block as :class:`StorageError` s (others unchanged).

    Raises:
        StorageError: the block failed on access, a missing bucket or the endpoint.
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as err:
        mapped = storage_error(err, uri, storage_options)
        if mapped is None:
            raise
        raise mapped from err


def probe_fs(storage_options: StorageOptions = None) -> Any:
    """An s3fs filesystem for one quick question: few retries, no caches."""
    import s3fs

    options = dict(storage_options or {})
    config = {**(options.pop("config_kwargs", None) or {})}
    config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
    config.setdefault("connect_timeout", 5)
    fs = s3fs.S3FileSystem(
        **options, config_kwargs=config, skip_instance_cache=True, use_listings_cache=False
    )
    fs.retries = 1  # the probe runs on failure paths; botocore's own retries are enough
    return fs


def check_bucket(uri: str, storage_options: StorageOptions = None) -> None:
    """Refuse an ``s3://`` URI whose bucket is missing or refused (no-op for other URIs).

    Raises:
        BucketMissingError: the bucket does not exist.
        StorageAccessDenied: the server refused the credentials or the policy forbids listing.
        EndpointUnreachableError: the endpoint did not answer.
    """
    if not is_s3(uri):
        return
    fs = probe_fs(storage_options)
    with storage_errors(uri, storage_options):
        try:
            fs.call_s3("head_bucket", Bucket=bucket_and_key(uri)[0])
        except FileNotFoundError as err:  # s3fs's reading of a 404 on the bucket
            raise BucketMissingError(bucket_missing(uri, storage_options), uri) from err


def diagnose_missing(uri: str, storage_options: StorageOptions = None) -> None:
    """Why nothing was found at ``uri``: raise the matching error, or return when the prefix
    holds objects (then what is there is not what was expected; the caller says so).

    Raises:
        BucketMissingError, StorageAccessDenied, EndpointUnreachableError: as
            :func:`check_bucket`.
        PrefixMissingError: the bucket exists and nothing is stored under the prefix.
    """
    if not is_s3(uri):
        return
    check_bucket(uri, storage_options)
    bucket, key = bucket_and_key(uri)
    fs = probe_fs(storage_options)
    with storage_errors(uri, storage_options):
        listed = fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=key, MaxKeys=1)
    if not listed.get("KeyCount"):
        raise PrefixMissingError(prefix_missing(uri, storage_options), uri)
