"""Zipped ``.SAFE`` products (``S2A_MSIL2A_….SAFE.zip`` as the Copernicus Data Space delivers
them), read in place: nothing is extracted to disk.

The zip's central directory is read once (a few range requests on S3) to list its members;
pixels are read window by window through GDAL's ``/vsizip/`` (chained with ``/vsis3/`` for
``s3://`` archives), metadata files through Python's :mod:`zipfile` on the same file object.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from datasets.errors import SceneReadError
from datasets.scenes.storage import Entry, SceneStore, is_s3

ZIP_SUFFIX = ".zip"


def is_zip(uri: str) -> bool:
    """Whether ``uri`` names a zip archive (by its suffix; the content is checked on open)."""
    return uri.lower().endswith(ZIP_SUFFIX)


def _vsi_base(archive: str) -> str:
    """GDAL's name of the archive itself: ``/abs/path.zip`` or ``/vsis3/bucket/key.zip``."""
    return "/vsis3/" + archive[len("s3://") :] if is_s3(archive) else archive


class ZipSceneStore(SceneStore):
    """Lists and opens the members of one zip archive held by ``outer`` (local or S3).

    Member URIs are GDAL paths, ``/vsizip/<archive>/<member>``, so :meth:`open_raster` reads
    them windowed in place.

    Args:
        archive: The archive's URI (normalised by ``outer``).
        outer: The store holding the archive (its S3 options and GDAL configuration are used).

    Raises:
        SceneReadError: ``archive`` is not a readable zip file.
    """

    def __init__(self, archive: str, outer: SceneStore) -> None:
        super().__init__(outer.storage_options, remote=outer.remote)
        self._outer = outer
        self.archive = archive
        self.root = f"/vsizip/{_vsi_base(archive)}"
        with self._zip() as zf:
            self._members = {info.filename.rstrip("/") for info in zf.infolist()}
        self._dirs = {
            "/".join(parts[:i])
            for name in self._members
            for parts in [name.split("/")]
            for i in range(1, len(parts))
        }

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        raw: IO[bytes] = self._outer.open_file(self.archive)
        try:
            with zipfile.ZipFile(raw) as zf:
                yield zf
        except zipfile.BadZipFile as err:
            raise SceneReadError(
                f"{self.archive} is not a readable zip archive ({err}); the download may be "
                "incomplete: download it again."
            ) from None
        finally:
            raw.close()

    def member(self, uri: str) -> str:
        """The member path of a URI of this store (``""`` for the archive's root)."""
        return uri[len(self.root) :].strip("/")

    def top_level(self) -> list[Entry]:
        """Entries at the root of the archive."""
        return self.listdir(self.root)

    def kind(self, uri: str) -> str | None:
        name = self.member(uri)
        if not name or name in self._dirs:
            return "dir"
        return "file" if name in self._members else None

    def listdir(self, uri: str) -> list[Entry]:
        name = self.member(uri)
        if name and name not in self._dirs:
            raise FileNotFoundError(f"{uri} is not a folder of {self.archive}")
        prefix = f"{name}/" if name else ""
        children = {
            path[len(prefix) :].split("/", 1)[0]
            for path in self._members | self._dirs
            if path.startswith(prefix) and path != name
        }
        entries = [
            Entry(child, self.join(uri, child), f"{prefix}{child}" in self._dirs)
            for child in children
        ]
        return sorted(entries, key=lambda e: e.name)

    def join(self, uri: str, *names: str) -> str:
        return "/".join([uri.rstrip("/"), *names])

    def normalize(self, uri: str | object) -> str:
        return str(uri)

    def open_file(self, uri: str) -> IO[bytes]:
        raise NotImplementedError("use read_bytes for members of a zip archive")

    def read_bytes(self, uri: str) -> bytes:
        name = self.member(uri)
        if name not in self._members:
            raise FileNotFoundError(f"{name} is not in {self.archive}")
        with self._zip() as zf:
            return zf.read(name)
