"""The file under a lease (:mod:`datasets.lease`): a few bytes changed only atomically.

Each operation either happens as a whole or reports that the file was not as expected, never
check-then-write: on S3 a conditional ``PutObject`` (``If-None-Match: *`` to create, ``If-Match:
<etag>`` to replace) and a conditional ``DeleteObject``; locally an exclusive ``flock`` on the
file itself (an operation that finds the file replaced or deleted under its lock starts again).
A *tag* names one content of the file (the S3 ETag, or a hash locally).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from datasets.storage_errors import bucket_and_key, is_s3, storage_errors


class LeaseFile(Protocol):
    """Atomic operations on one small file."""

    def read(self) -> tuple[bytes | None, str | None]:
        """The content and its tag; ``(None, None)`` when there is no file."""
        ...

    def create(self, data: bytes) -> str | None:
        """Write ``data`` if there is no file (or an empty one); its tag, or ``None``."""
        ...

    def replace(self, data: bytes, tag: str) -> str | None:
        """Write ``data`` if the content is still ``tag``'s; the new tag, or ``None``."""
        ...

    def delete(self, tag: str) -> bool:
        """Delete the file if the content is still ``tag``'s."""
        ...


def _tag(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


class LocalLeaseFile:
    """A file on a local file system; each change holds ``flock`` on the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self, create: bool) -> Iterator[int | None]:
        while True:
            flags = os.O_RDWR | (os.O_CREAT if create else 0)
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # not deleted or replaced while this process waited for the lock
                    yield fd
                    return
            finally:
                os.close(fd)

    @staticmethod
    def _content(fd: int) -> bytes:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.fsync(fd)

    def read(self) -> tuple[bytes | None, str | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        return data, _tag(data)

    def create(self, data: bytes) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(create=True) as fd:
            assert fd is not None
            if self._content(fd):
                return None
            self._write(fd, data)
            return _tag(data)

    def replace(self, data: bytes, tag: str) -> str | None:
        with self._locked(create=False) as fd:
            if fd is None or _tag(self._content(fd)) != tag:
                return None
            self._write(fd, data)
            return _tag(data)

    def delete(self, tag: str) -> bool:
        with self._locked(create=False) as fd:
            if fd is None or _tag(self._content(fd)) != tag:
                return False
            self.path.unlink()
            return True


def _precondition_failed(err: OSError) -> bool:
    """Whether an s3fs error is S3's answer to a condition that did not hold."""
    if isinstance(err, FileExistsError | FileNotFoundError):
        return True
    response = getattr(err.__cause__, "response", None) or {}
    code = (response.get("Error") or {}).get("Code")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def _read_body(fs: Any, body: Any) -> bytes:
    """The bytes of an aiobotocore streaming body, read on s3fs's event loop."""
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with body as stream:
            return bytes(await stream.read())

    return bytes(sync(fs.loop, read))


class S3LeaseFile:
    """An object on S3, changed only by conditional requests.

    Raises (every operation):
        StorageError: the bucket is missing, the access refused or the endpoint unreachable.
    """

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None) -> None:
        import s3fs

        self.uri = uri
        self.bucket, self.key = bucket_and_key(uri)
        self.storage_options = storage_options
        self.fs = s3fs.S3FileSystem(**dict(storage_options or {}), skip_instance_cache=True)

    def _call(self, method: str, **kwargs: Any) -> Any:
        with storage_errors(self.uri, self.storage_options):
            return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

    def _conditional(self, method: str, **kwargs: Any) -> Any | None:
        """The answer to a conditional request, ``None`` when its condition did not hold."""
        try:
            return self._call(method, **kwargs)
        except OSError as err:
            if _precondition_failed(err):
                return None
            raise

    def read(self) -> tuple[bytes | None, str | None]:
        try:
            got = self._call("get_object")
        except FileNotFoundError:
            return None, None
        return _read_body(self.fs, got["Body"]), str(got["ETag"])

    def create(self, data: bytes) -> str | None:
        done = self._conditional("put_object", Body=data, IfNoneMatch="*")
        return None if done is None else str(done["ETag"])

    def replace(self, data: bytes, tag: str) -> str | None:
        done = self._conditional("put_object", Body=data, IfMatch=tag)
        return None if done is None else str(done["ETag"])

    def delete(self, tag: str) -> bool:
        return self._conditional("delete_object", IfMatch=tag) is not None


def lease_file(uri: str, storage_options: Mapping[str, Any] | None = None) -> LeaseFile:
    """The lease file at ``uri`` (local path, ``file://`` or ``s3://``).

    Raises:
        ValueError: another URL scheme (no atomic primitive to build a lease on).
    """
    if is_s3(uri):
        return S3LeaseFile(uri, storage_options)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"leases live on a local path or s3://, not {uri}")
    return LocalLeaseFile(Path(uri.removeprefix("file://")))
