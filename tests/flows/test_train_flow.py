"""Flow ``train-srgan`` run in-process: artifacts, retry-and-resume, torn checkpoints, bad input
that fails at its first attempt, one device per flow run.

Every run trains the same tiny config on the same real patch store, so a run that was interrupted
and resumed must end with exactly the weights of the uninterrupted one (CPU, one thread).
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import torch
from training_faults import flaky_fit

import tasks.train
from datasets.errors import PatchStoreError, StoreMismatchError
from flows.train import train_srgan
from srgan.checkpointing import LAST, PREVIOUS, CheckpointError, load_checkpoint
from srgan.config import ConfigError
from srgan.train import InitCheckpointError

pytestmark = pytest.mark.usefixtures("prefect_api")

NETWORKS = ("generator", "discriminator", "ema")


def network_weights(checkpoint: str) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)["state_dict"]
    return {k: v for k, v in state.items() if k.split(".")[0] in NETWORKS}


def assert_same_weights(a: str, b: str) -> None:
    wa, wb = network_weights(a), network_weights(b)
    assert wa.keys() == wb.keys() and any(k.startswith("ema.") for k in wa)
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert different == [], f"weights differ from the uninterrupted run: {different[:5]}"


def linked_path(artifact: Any) -> Path:
    """The local file a link artifact (markdown ``[text](file://...)``) points at."""
    match = re.search(r"\]\((file://[^)]+)\)", artifact.data)
    assert match, artifact.data
    return Path(unquote(urlparse(match.group(1)).path))


@pytest.fixture(scope="module")
def straight(
    prefect_api: None,
    patch_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tiny: Any,
    iterations: int,
) -> Any:
    """One uninterrupted ``train-srgan`` run (the reference of the fault tests)."""
    storage = tmp_path_factory.mktemp("straight-storage")
    torch.set_num_threads(1)
    return train_srgan(
        store=str(patch_store),
        overrides=tiny(),
        storage=str(storage),
        run_key="straight",
        max_iterations=iterations,
        return_state=True,
    )


def test_run_registers_plausible_artifacts(
    straight: Any, read_artifacts: Any, training_artifacts: set[str], iterations: int
) -> None:
    assert straight.is_completed(), straight
    result = straight.result()
    assert result.run_key == "straight" and result.fit.resumed_from is None
    assert result.fit.iteration == iterations
    artifacts = read_artifacts(straight.state_details.flow_run_id)
    assert training_artifacts <= set(artifacts)

    rows = json.loads(artifacts["srgan-validation-metrics"].data)
    assert [r["metric"] for r in rows] == [
        *("l1", "psnr", "ssim", "sam", "ergas", "improvement", "omission", "hallucination")
    ]
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("srgan", "bicubic", "gain")), row
    psnr = next(r for r in rows if r["metric"] == "psnr")
    assert 10 < psnr["bicubic"] < 60
    assert psnr["gain"] == pytest.approx(psnr["srgan"] - psnr["bicubic"], abs=1e-4)
    l1 = next(r for r in rows if r["metric"] == "l1")
    assert l1["gain"] == pytest.approx(l1["bicubic"] - l1["srgan"], abs=1e-4)  # lower is better

    for key, which in (("srgan-last-checkpoint", "last"), ("srgan-best-checkpoint", "best")):
        path = linked_path(artifacts[key])
        assert path.is_file() and str(path) == getattr(result.fit, f"{which}_checkpoint")
    assert load_checkpoint(result.fit.last_checkpoint)["srgan"]["iteration"] == iterations

    assert artifacts["srgan-training-progress"].data == 100
    report = artifacts["srgan-training-report"].data
    assert f"- iterations: {iterations} (resumed from `None`)" in report
    assert result.fit.store_version and f"(version `{result.fit.store_version}`)" in report
    curve = report.split("## Validation during training", 1)[1].split("##", 1)[0]
    assert result.fit.metric_history and "(best)" in curve
    assert f"| {int(result.fit.metric_history[-1]['iteration'])}" in curve
    assert "- software: s2-srgan " in report
    data = report.split("## Training data", 1)[1].split("##", 1)[0]
    assert data.count("\n|") >= 3 and "| harmonisation |" in data  # header, rule, scenes
    preview = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", artifacts["srgan-preview"].data)
    assert preview and base64.b64decode(preview.group(1)).startswith(b"\x89PNG")
    curves = report.split("## Loss curves", 1)[1].split("##", 1)[0]
    png = re.search(r"!\[loss curves\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", curves)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert (Path(result.fit.run_dir) / "previews" / "loss_curves.png").is_file()


def test_failed_attempt_is_retried_and_resumes_to_identical_weights(
    straight: Any,
    patch_store: Path,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny: Any,
    iterations: int,
    attempts: Any,
) -> None:
    starts = flaky_fit(monkeypatch, fail_at=7)
    state = train_srgan.with_options(retry_delay_seconds=0)(
        store=str(patch_store),
        overrides=tiny(),
        run_key="interrupted",
        max_iterations=iterations,
        return_state=True,
    )

    assert state.is_completed(), state
    result = state.result()
    # the failure point was saved between steps, so the retry continues at iteration 7, not 0
    assert [s.iteration for s in starts] == [0, 7]
    assert attempts(state.state_details.flow_run_id)["flow"] == 2  # a flow-level retry
    assert result.fit.resumed_from == str(storage / "runs/interrupted/checkpoints/last.ckpt")
    assert result.fit.iteration == iterations
    assert_same_weights(result.fit.last_checkpoint, straight.result().fit.last_checkpoint)


# the fallback itself warns about the torn file: that warning is what this test provokes
@pytest.mark.filterwarnings("ignore:skipping unusable checkpoint")
def test_torn_last_checkpoint_falls_back_to_the_previous_one(
    straight: Any,
    patch_store: Path,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
    read_logs: Any,
    tiny: Any,
    iterations: int,
) -> None:
    def tear_last(run_dir: str) -> None:
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])

    # checkpoints at 3 and 6, then the failure at 8 is saved: last = 8, previous = 6
    starts = flaky_fit(monkeypatch, fail_at=8, before_retry=tear_last)
    state = train_srgan.with_options(retry_delay_seconds=0)(
        store=str(patch_store),
        overrides=tiny(),
        run_key="torn",
        max_iterations=iterations,
        return_state=True,
    )

    assert state.is_completed(), state
    result = state.result()
    assert [s.iteration for s in starts] == [0, 6]
    assert result.fit.resumed_from == str(storage / "runs/torn/checkpoints" / PREVIOUS)
    logs = read_logs(state.state_details.flow_run_id)
    assert any("skipping unusable checkpoint" in m and "last.ckpt" in m for m in logs), logs
    assert_same_weights(result.fit.last_checkpoint, straight.result().fit.last_checkpoint)


def test_bad_preset_fails_at_the_first_attempt(
    storage: Path, read_artifacts: Any, attempts: Any
) -> None:
    # the flow's default retries: a config that cannot parse must not be tried three times
    assert train_srgan.retries == 2
    state = train_srgan(config="no-such-preset", max_iterations=4, return_state=True)

    assert state.is_failed(), state
    raised = state.result(raise_on_failure=False)
    assert isinstance(raised, ConfigError) and "cpu-tiny" in str(raised), repr(raised)
    flow_run_id = state.state_details.flow_run_id
    assert attempts(flow_run_id) == {"flow": 1}  # no retry, and no task started
    assert read_artifacts(flow_run_id) == {}


def damage_checkpoints(storage: Path, run_key: str) -> None:
    """Give run ``run_key`` a ``last.ckpt`` and a ``last-previous.ckpt`` that do not load."""
    ckpt_dir = storage / "runs" / run_key / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    for name in (LAST, PREVIOUS):
        (ckpt_dir / name).write_bytes(b"torn")


@pytest.mark.parametrize(
    ("case", "error", "hint"),
    [
        ("unknown override key", ConfigError, "chanels"),
        ("missing store", PatchStoreError, "nowhere.zarr"),
        ("empty folder", PatchStoreError, "empty.zarr"),
        ("no validation patches", PatchStoreError, "'val' split"),
        ("bands mismatch", StoreMismatchError, "set data.bands/data.scale to match"),
        ("architecture mismatch", InitCheckpointError, "different architecture"),
        ("damaged checkpoints", CheckpointError, "last-previous.ckpt"),
        ("several nodes", ConfigError, "torchrun"),
    ],
)
# damaged checkpoints are skipped with a warning before the CheckpointError: provoked on purpose
@pytest.mark.filterwarnings("ignore:skipping unusable checkpoint")
def test_bad_input_fails_clearly_at_the_first_attempt_without_artifacts(
    case: str,
    error: type[Exception],
    hint: str,
    straight: Any,
    patch_store: Path,
    bigearthnet_dirs: list[Path],
    storage: Path,
    read_artifacts: Any,
    tiny: Any,
    tile_store: Any,
    attempts: Any,
) -> None:
    store, overrides, init_from, run_key = str(patch_store), tiny(), None, None
    if case == "unknown override key":
        overrides = tiny(generator={"chanels": 16})
    elif case == "missing store":
        store = str(storage / "nowhere.zarr")
    elif case == "empty folder":
        (storage / "empty.zarr").mkdir()
        store = str(storage / "empty.zarr")
    elif case == "no validation patches":
        # this BigEarthNet patch has all its 64 px blocks in the train split
        scene = next(d for d in bigearthnet_dirs if d.name.endswith("113321_4_55"))
        store = tile_store([scene], str(storage / "train-only.zarr"))
    elif case == "bands mismatch":
        overrides = tiny(data={"bands": ["B02", "B03", "B04"]})
    elif case == "architecture mismatch":
        overrides = tiny(generator={"channels": 16})
        init_from = straight.result().fit.last_checkpoint
    elif case == "damaged checkpoints":
        run_key = "torn-twice"
        damage_checkpoints(storage, run_key)
    else:
        overrides = tiny(trainer={"accelerator": "cpu", "num_nodes": 2})

    # the flow and its training task keep their default retries
    state = train_srgan(
        store=store,
        overrides=overrides,
        max_iterations=4,
        init_from=init_from,
        run_key=run_key,
        return_state=True,
    )

    assert state.is_failed(), state
    raised = state.result(raise_on_failure=False)
    assert isinstance(raised, error), repr(raised)
    assert hint in str(raised)
    flow_run_id = state.state_details.flow_run_id
    assert set(attempts(flow_run_id).values()) == {1}, attempts(flow_run_id)
    assert read_artifacts(flow_run_id) == {}
    if case == "damaged checkpoints":  # left for the user to inspect, never deleted
        ckpt_dir = storage / "runs" / "torn-twice" / "checkpoints"
        assert [(ckpt_dir / n).read_bytes() for n in (LAST, PREVIOUS)] == [b"torn", b"torn"]


class DeviceCount:
    """Let Lightning see ``n`` CUDA devices (no GPU needed: the fit itself is replaced)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        from lightning.pytorch.accelerators import CUDAAccelerator

        monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: True))
        monkeypatch.setattr(CUDAAccelerator, "auto_device_count", staticmethod(lambda: n))


def recording_fit(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the task's ``fit`` by one that records the trainer config and fails."""
    seen: list[Any] = []

    def fit(config: Any, datamodule: Any, run_dir: str, **kwargs: Any) -> Any:
        seen.append(config.trainer)
        raise RuntimeError("recorded")

    monkeypatch.setattr(tasks.train, "fit", fit)
    return seen


def test_devices_auto_on_a_multi_gpu_worker_trains_on_one_device(
    patch_store: Path, storage: Path, monkeypatch: pytest.MonkeyPatch, tiny: Any
) -> None:
    DeviceCount(monkeypatch, 4)
    seen = recording_fit(monkeypatch)
    train_srgan.with_options(retries=0)(
        store=str(patch_store), overrides=tiny(), max_iterations=4, return_state=True
    )
    assert [(t.devices, t.num_nodes) for t in seen] == [(1, 1)]


def test_torchrun_ranks_keep_their_devices(
    patch_store: Path, storage: Path, monkeypatch: pytest.MonkeyPatch, tiny: Any
) -> None:
    DeviceCount(monkeypatch, 4)
    for name, value in (("WORLD_SIZE", "4"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    seen = recording_fit(monkeypatch)
    train_srgan.with_options(retries=0)(
        store=str(patch_store), overrides=tiny(), max_iterations=4, return_state=True
    )
    assert [t.devices for t in seen] == ["auto"]


@pytest.mark.slow
def test_several_devices_train_as_torchrun_ranks(
    patch_store: Path,
    storage: Path,
    read_logs: Any,
    read_artifacts: Any,
    tiny: Any,
    iterations: int,
) -> None:
    # two CPU processes (gloo) stand in for two GPUs of one worker
    overrides = tiny(trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp"})
    state = train_srgan.with_options(retries=0)(
        store=str(patch_store), overrides=overrides, max_iterations=iterations, return_state=True
    )

    assert state.is_completed(), state
    result = state.result()
    assert result.fit.iteration == iterations and result.fit.store_version
    checkpoint = load_checkpoint(result.fit.last_checkpoint)
    assert checkpoint["srgan"]["iteration"] == iterations
    assert checkpoint["hyper_parameters"]["config"]["trainer"]["devices"] == 2
    logs = "\n".join(read_logs(state.state_details.flow_run_id))
    assert "training on 2 devices" in logs and "SRGAN fit" in logs  # the ranks' log lines
    artifacts = read_artifacts(state.state_details.flow_run_id)
    assert artifacts["srgan-training-progress"].data == 100
    assert "(best)" in artifacts["srgan-training-report"].data  # rank 0's validation history
