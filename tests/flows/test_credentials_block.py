"""``train-srgan`` on an ``s3://`` storage root with credentials from a Prefect ``Secret`` block.

No ``AWS_*`` variable is set while the flow runs: the moto server of ``s3_server`` checks
signatures like AWS, so a completed run proves that the flow loaded the block's key pair for
s3fs, Icechunk and Lightning's checkpoint I/O. The secret must then appear nowhere the run leaves
a trace (logs, artifacts, parameters, result, checkpoints), and must be gone from the environment
once the run is over. A missing or malformed block fails the run at its first attempt, naming
the block and its keys but no value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.train import train_srgan
from tasks.credentials import CredentialsBlockError, s3_credentials

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

BUCKET = "s2sr-flow-credentials-block"
BLOCK = "s2sr-test-s3"


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``AWS_*`` variable (nor ``$S2SR_STORAGE``) in the environment; s3fs caches cleared."""
    import s3fs

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("S2SR_STORAGE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_block(s3_aws_variables: dict[str, str], no_aws_env: None) -> dict[str, str]:
    """A ``Secret`` block :data:`BLOCK` holding the test server's credentials; returns them."""
    from prefect.blocks.system import Secret

    Secret(value=s3_aws_variables).save(BLOCK, overwrite=True)
    return s3_aws_variables


def _aws_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def test_s3_storage_with_block_credentials_leaks_no_secret(
    s3_server: Any,
    s3_block: dict[str, str],
    bigearthnet_dirs: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    check_s3_training_run: Any,
    tiny: Any,
    tile_store: Any,
) -> None:
    import s3fs

    secret = s3_block["AWS_SECRET_ACCESS_KEY"]
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)  # explicit, for the test only
    fs.mkdir(BUCKET)
    storage = f"s3://{BUCKET}/root"
    with monkeypatch.context() as setup:  # the store is tiled before the run, outside the flow
        for name, value in s3_block.items():
            setup.setenv(name, value)
        tile_store(bigearthnet_dirs[:3], f"{storage}/patches/sentinel2.zarr")
    s3fs.S3FileSystem.clear_instance_cache()
    assert _aws_env() == {}

    state = train_srgan.with_options(retries=0)(
        storage=storage,
        overrides=tiny(),
        max_iterations=6,
        credentials_block=BLOCK,
        return_state=True,
    )

    assert _aws_env() == {}, "the block's variables outlived the flow run"
    assert "AWS_SECRET_ACCESS_KEY" not in os.environ
    run = check_s3_training_run(state, fs, BUCKET, storage, secret)
    assert BLOCK in run["parameters"]


def test_block_values_last_only_as_long_as_the_context(
    s3_block: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-worker's-own")
    with s3_credentials(BLOCK):
        # the block's variables, and no token of the worker mixed with the block's key pair
        assert _aws_env() == s3_block
    # the previous values are back
    assert _aws_env() == {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_SESSION_TOKEN": "the-worker's-own",
    }
    with s3_credentials(None):
        assert _aws_env()["AWS_SESSION_TOKEN"] == "the-worker's-own"


def test_missing_block_fails_at_the_first_attempt(
    no_aws_env: None, storage: Path, read_artifacts: Any, attempts: Any
) -> None:
    assert train_srgan.retries == 2  # the flow's default retries stay on
    state = train_srgan(max_iterations=4, credentials_block="no-such-block", return_state=True)

    assert state.is_failed(), state
    raised = state.result(raise_on_failure=False)
    assert isinstance(raised, CredentialsBlockError), repr(raised)
    assert "no Secret block named 'no-such-block'" in str(raised)
    flow_run_id = state.state_details.flow_run_id
    assert attempts(flow_run_id)["flow"] == 1
    assert read_artifacts(flow_run_id) == {}
    assert not list(storage.iterdir())  # nothing was written


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (
            {"AWS_ACCESS_KEY_ID": "AKIDLEAKCHECK", "AWS_SECRET_KEY": "do-not-print-me-1"},
            "unknown keys ['AWS_SECRET_KEY']",
        ),
        ("do-not-print-me-2", "must hold a JSON object of AWS variables"),
        ({"AWS_SECRET_ACCESS_KEY": ["do-not-print-me-3"]}, "AWS_SECRET_ACCESS_KEY"),
    ],
    ids=["unknown key", "plain string", "non-string value"],
)
def test_malformed_block_names_the_problem_but_no_value(
    value: Any,
    hint: str,
    no_aws_env: None,
    storage: Path,
    read_logs: Any,
    attempts: Any,
) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save("s2sr-test-malformed", overwrite=True)

    state = train_srgan(
        max_iterations=4, credentials_block="s2sr-test-malformed", return_state=True
    )

    assert state.is_failed(), state
    raised = state.result(raise_on_failure=False)
    assert isinstance(raised, CredentialsBlockError), repr(raised)
    assert "s2sr-test-malformed" in str(raised) and hint in str(raised), str(raised)
    flow_run_id = state.state_details.flow_run_id
    assert attempts(flow_run_id)["flow"] == 1
    logs = "\n".join(read_logs(flow_run_id))
    assert "CredentialsBlockError" in logs  # the logs were read
    for where, text in {"error": str(raised), "message": str(state.message), "logs": logs}.items():
        assert "do-not-print-me" not in text, f"a block value leaked into the {where}"
    assert _aws_env() == {}
