"""``train-srgan`` on an ``s3://`` storage root with credentials from the environment only.

The moto server of ``s3_server`` checks signatures like AWS, so a completed run proves that s3fs,
Icechunk and Lightning's checkpoint I/O all found the key pair in the environment. The secret must
then appear nowhere the run leaves a trace: logs, artifacts, parameters, checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.train import train_srgan

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

BUCKET = "s2sr-flow-credentials"


@pytest.fixture
def s3_env(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The test server's credentials as AWS_* variables; s3fs caches cleared around the test."""
    import s3fs

    env = {
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_ENDPOINT_URL": s3_server["endpoint_url"],
        # Icechunk's S3 client wants a region whenever it is not given one explicitly.
        "AWS_DEFAULT_REGION": "us-east-1",
    }
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
    read_artifacts: Any,
    read_logs: Any,
    tiny: Any,
    tile_store: Any,
) -> None:
    import s3fs
    from prefect.client.orchestration import get_client

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

    assert state.is_completed(), state
    result = state.result()
    run_dir = f"{storage}/runs/{result['run_key']}"
    assert result["last_checkpoint"] == f"{run_dir}/checkpoints/last.ckpt"
    checkpoints = fs.find(f"{BUCKET}/root/runs/{result['run_key']}/checkpoints")
    assert {p.rsplit("/", 1)[-1] for p in checkpoints} >= {"last.ckpt", "best.ckpt"}

    flow_run_id = state.state_details.flow_run_id
    logs = "\n".join(read_logs(flow_run_id))
    assert run_dir in logs  # the logs were read, and they name the run's S3 location
    artifacts = read_artifacts(flow_run_id)
    assert {"srgan-last-checkpoint", "srgan-training-report"} <= set(artifacts)
    # the preview is written into the run's S3 folder and embedded in its artifact
    assert fs.isfile(f"{BUCKET}/root/runs/{result['run_key']}/previews/latest.png")
    assert "data:image/png;base64," in artifacts["srgan-preview"].data
    with get_client(sync_client=True) as client:
        parameters = json.dumps(client.read_flow_run(flow_run_id).parameters)
    assert storage in parameters

    traces = {
        "logs": logs,
        "artifacts": "\n".join(f"{a.description}\n{a.data}" for a in artifacts.values()),
        "parameters": parameters,
        "result": json.dumps(result),
    }
    for where, text in traces.items():
        assert secret not in text, f"the secret key leaked into the {where}"
    for path in checkpoints:
        assert secret.encode() not in fs.cat_file(path), f"the secret key leaked into {path}"
