"""``train-srgan`` on an ``s3://`` storage root with credentials from the environment only.

The moto server of ``s3_server`` checks signatures like AWS, so a completed run proves that s3fs,
Icechunk and Lightning's checkpoint I/O all found the key pair in the environment. The secret must
then appear nowhere the run leaves a trace: logs, artifacts, parameters, checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.train import train_srgan

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

BUCKET = "s2sr-flow-credentials"


@pytest.fixture
def s3_env(
    s3_aws_variables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The test server's credentials set as AWS_* variables; s3fs caches cleared around it."""
    import s3fs

    env = s3_aws_variables
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("S2SR_STORAGE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield env
    s3fs.S3FileSystem.clear_instance_cache()


def test_s3_storage_with_env_credentials_leaks_no_secret(
    s3_env: dict[str, str],
    bigearthnet_dirs: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    check_s3_training_run: Any,
    tiny: Any,
    tile_store: Any,
) -> None:
    import s3fs

    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    fs = s3fs.S3FileSystem(skip_instance_cache=True)  # credentials from the environment
    fs.mkdir(BUCKET)
    with monkeypatch.context() as wrong:
        wrong.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(PermissionError):  # the server does check the signature
            s3fs.S3FileSystem(skip_instance_cache=True).ls(BUCKET)
    storage = f"s3://{BUCKET}/root"
    tile_store(bigearthnet_dirs[:3], f"{storage}/patches/sentinel2.zarr")

    state = train_srgan.with_options(retries=0)(
        storage=storage, overrides=tiny(), max_iterations=6, return_state=True
    )

    run = check_s3_training_run(state, fs, BUCKET, storage, secret)
    # the preview is written into the run's S3 folder and embedded in its artifact
    assert fs.isfile(f"{BUCKET}/root/runs/{run['result'].run_key}/previews/latest.png")
    assert "data:image/png;base64," in run["artifacts"]["srgan-preview"].data
