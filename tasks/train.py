"""The training task: fit the SRGAN on a patch store, resuming the run's own checkpoints."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from prefect import runtime, task
from prefect.logging import get_run_logger

from datasets.errors import PatchStoreError, is_transient
from datasets.lease import LeaseHeldError
from datasets.storage_errors import StorageError
from srgan.checkpointing import CheckpointError
from srgan.config import ConfigError, TrainingConfig, load_config
from srgan.data import pinned_datamodule
from srgan.module import NonFiniteLossError
from srgan.train import FitResult, InitCheckpointError, devices_per_node, fit
from tasks.credentials import CredentialsBlockError
from tasks.progress import PrefectProgress, report_progress

# Library loggers whose records should reach the Prefect run logs.
LIBRARY_LOGGERS = ("srgan", "datasets", "lightning.pytorch")

#: Failures that another attempt would only repeat: the input is wrong, not the moment. A bad
#: config, a missing/empty/mismatched store, an init-from checkpoint of another architecture,
#: checkpoints that do not load, a NaN loss (the resumed run replays the same steps), a
#: missing or malformed credentials block, storage that refuses the credentials or lacks the
#: bucket or prefix (an unreachable endpoint is transient), and a run folder in use by another
#: run.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CredentialsBlockError,
    PatchStoreError,
    InitCheckpointError,
    CheckpointError,
    NonFiniteLossError,
    StorageError,
    LeaseHeldError,
)

#: Variables torchrun (torch.distributed.run) sets in every rank it starts.
TORCHRUN_ENV = ("WORLD_SIZE", "LOCAL_RANK")


def training_config(
    config: str,
    overrides: dict[str, Any],
    store: str,
    max_iterations: int | None,
    max_epochs: int | None,
) -> TrainingConfig:
    """Preset or YAML + overrides + the flow's own parameters, validated."""
    merged: dict[str, Any] = {**overrides}
    merged["data"] = {**overrides.get("data", {}), "store": store}
    if max_iterations is not None:
        merged["schedule"] = {**overrides.get("schedule", {}), "max_iterations": max_iterations}
    if max_epochs is not None:
        merged["trainer"] = {**overrides.get("trainer", {}), "max_epochs": max_epochs}
    return load_config(config, merged)


def is_input_error(err: BaseException) -> bool:
    """Whether another attempt would only repeat ``err``: an input error not marked transient.

    A data-layer error marked transient (e.g. a lost commit race) counts as worth a retry even
    where its class is a store error.
    """
    return isinstance(err, INPUT_ERRORS) and not is_transient(err)


def end_flow_retries() -> None:
    """Let the current flow run fail without its remaining automatic retries.

    Prefect retries a failed flow run on any error; the retry budget lives in the run's policy
    on the server, so setting it to 0 makes this failure final. Outside a flow run: no-op.
    """
    from prefect import runtime
    from prefect.client.orchestration import get_client

    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            policy = client.read_flow_run(flow_run_id).empirical_policy
            client.update_flow_run(
                flow_run_id, empirical_policy=policy.model_copy(update={"retries": 0})
            )
    except Exception as err:  # the input error being raised matters more than the retries
        get_run_logger().warning("could not cancel the remaining retries: %s", err)


def local_processes(config: TrainingConfig) -> tuple[TrainingConfig, int]:
    """``config`` fitted to a flow run, and how many training processes it needs on this node.

    Lightning's ``ddp`` starts the extra ranks by running the current command line again, and in
    a flow run that command is Prefect's flow-run engine: each rank would be another run of the
    flow. So ``trainer.devices: auto`` means one device here, and an explicit device count above
    one is trained by ``torchrun`` ranks that the task starts itself (:func:`fit_with_torchrun`).
    A process torchrun already started keeps its config (count 1: it is one of the ranks).

    Raises:
        ConfigError: ``trainer.num_nodes`` > 1 (a flow run lives on one node).
    """
    if any(name in os.environ for name in TORCHRUN_ENV):
        return config, 1
    asked = config.trainer
    if asked.num_nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={asked.num_nodes}: a train-srgan flow run trains on the devices "
            "of one node. Train on several nodes with `torchrun ... -m srgan.cli train` on "
            "each node (docs/scaling.md: 'Training on several GPUs or nodes'), or set "
            "trainer.num_nodes=1 here."
        )
    t = asked.model_copy(update={"devices": 1}) if asked.devices == "auto" else asked
    return config.model_copy(update={"trainer": t}), devices_per_node(t)


def run_owner() -> str | None:
    """The owner of the run folder for this flow run: ``flow run <id>`` (None outside one).

    A retry of the flow run (automatic, or ``prefect flow-run retry``) is the same owner, so it
    takes the run folder over from its crashed attempt at once.
    """
    flow_run_id = runtime.flow_run.id
    return f"flow run {flow_run_id}" if flow_run_id else None


def fit_with_torchrun(
    config: TrainingConfig, run_dir: str, init_from: str | None, processes: int
) -> FitResult:
    """Train with ``processes`` DDP ranks started by torchrun on this node; rank 0's result.

    The ranks run ``srgan.cli train`` with the exact config (store version pinned); their output
    goes to the run logs line by line. Resume works as in one process: every rank loads the
    run's ``last.ckpt``.

    Raises:
        RuntimeError: a rank failed (its messages are in the run logs).
    """
    logger = get_run_logger()
    with tempfile.TemporaryDirectory(prefix="s2sr-ddp-") as tmp:
        config_path, result_path = Path(tmp) / "config.yaml", Path(tmp) / "result.json"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "srgan.cli",
            "train",
            "--config",
            str(config_path),
            "--data",
            str(config.data.store),
            "--run-dir",
            run_dir,
            "--result-json",
            str(result_path),
        ]
        if init_from:
            command += ["--init-from", init_from]
        owner = run_owner()
        if owner:
            command += ["--run-owner", owner]
        logger.info("training on %d devices: %s", processes, " ".join(command[2:6]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__")}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as ranks:
            assert ranks.stdout is not None
            for line in ranks.stdout:
                if line.strip():
                    logger.info("%s", line.rstrip())
        if ranks.returncode != 0 or not result_path.is_file():
            raise RuntimeError(
                f"DDP training on {processes} devices failed (torchrun exit status "
                f"{ranks.returncode}); the ranks' messages are in the run logs above"
            )
        result = FitResult(**json.loads(result_path.read_text()))
    report_progress(100.0, f"SRGAN training on {processes} devices: iteration {result.iteration}")
    return result


def progress_for(config: TrainingConfig) -> PrefectProgress:
    """The progress reporter of a run: its total comes from the iteration and epoch limits."""
    return PrefectProgress(
        config.schedule.max_iterations,
        every_n_iterations=max(1, config.trainer.log_every_n_iterations),
    )


def _bridge_logs() -> list[logging.Handler]:
    """Send the libraries' log records to the Prefect run logger while the task runs."""
    run_logger = get_run_logger()
    handlers: list[logging.Handler] = []
    for name in LIBRARY_LOGGERS:
        handler = _ForwardHandler(run_logger)
        lib = logging.getLogger(name)
        lib.addHandler(handler)
        lib.setLevel(logging.INFO)
        handlers.append(handler)
    return handlers


class _ForwardHandler(logging.Handler):
    def __init__(self, target: Any) -> None:
        super().__init__(logging.INFO)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.log(record.levelno, "%s: %s", record.name, record.getMessage())


@task(name="fit-srgan", log_prints=True)
def fit_srgan(
    config: TrainingConfig,
    run_dir: str,
    init_from: str | None = None,
    callbacks: tuple[Any, ...] = (),
) -> FitResult:
    """Fit (or resume) the SRGAN into ``run_dir``; returns paths and metrics, never tensors.

    Retries belong to the flow: its retry resumes from the run's own ``last.ckpt``.
    """
    handlers = _bridge_logs()
    try:
        config, processes = local_processes(config)
        # the run records the exact store version it read (inside every checkpoint's config)
        config, datamodule = pinned_datamodule(config)
        if processes > 1:
            if callbacks:
                raise ValueError("callbacks cannot reach the torchrun ranks of a multi-device fit")
            return fit_with_torchrun(config, run_dir, init_from, processes)
        return fit(
            config,
            datamodule,
            run_dir,
            resume=True,
            init_from=init_from,
            callbacks=[progress_for(config), *callbacks],
            owner=run_owner(),
        )
    finally:
        for name, handler in zip(LIBRARY_LOGGERS, handlers, strict=True):
            logging.getLogger(name).removeHandler(handler)
