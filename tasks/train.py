"""The training task: fit the SRGAN on a patch store, resuming the run's own checkpoints."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from datasets.errors import PatchStoreError, is_transient
from srgan.checkpointing import CheckpointError
from srgan.config import ConfigError, TrainingConfig, load_config
from srgan.module import NonFiniteLossError
from srgan.train import InitCheckpointError, devices_per_node, fit
from tasks.credentials import CredentialsBlockError
from tasks.data import datamodule_for
from tasks.progress import PrefectProgress

# Library loggers whose records should reach the Prefect run logs.
LIBRARY_LOGGERS = ("srgan", "datasets", "lightning.pytorch")

#: Failures that another attempt would only repeat: the input is wrong, not the moment. A bad
#: config, a missing/empty/mismatched store, an init-from checkpoint of another architecture,
#: checkpoints that do not load, a NaN loss (the resumed run replays the same steps), and a
#: missing or malformed credentials block.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CredentialsBlockError,
    PatchStoreError,
    InitCheckpointError,
    CheckpointError,
    NonFiniteLossError,
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
    with get_client(sync_client=True) as client:
        policy = client.read_flow_run(flow_run_id).empirical_policy
        client.update_flow_run(
            flow_run_id, empirical_policy=policy.model_copy(update={"retries": 0})
        )


def one_process_training(config: TrainingConfig) -> TrainingConfig:
    """``config`` fitted to training inside this (flow-run) process.

    Lightning's ``ddp`` starts the extra ranks by running the current command line again, and in
    a flow run that command is Prefect's flow-run engine: each rank would be another run of the
    flow, and the first one waits for them forever. Unless torchrun started this process (its
    ranks are already there), ``trainer.devices: auto`` therefore means one device, and more than
    one device or node is refused.

    Raises:
        ConfigError: ``trainer.devices`` selects several devices, or ``trainer.num_nodes`` > 1.
    """
    if any(name in os.environ for name in TORCHRUN_ENV):
        return config
    asked = config.trainer
    t = asked.model_copy(update={"devices": 1}) if asked.devices == "auto" else asked
    selected = devices_per_node(t) * t.num_nodes
    if selected > 1:
        raise ConfigError(
            f"trainer.devices={asked.devices!r} with trainer.num_nodes={asked.num_nodes} selects "
            f"{selected} devices, but a train-srgan flow run trains in one process on one "
            "device: Lightning would start the other DDP ranks by re-running the flow-run "
            "engine. Set trainer.devices=1 (or leave it 'auto') and trainer.num_nodes=1 here; "
            "train on several GPUs or nodes with `torchrun ... -m srgan.cli train` instead "
            "(README: 'Training on several GPUs or nodes')."
        )
    return config.model_copy(update={"trainer": t})


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
) -> dict[str, Any]:
    """Fit (or resume) the SRGAN into ``run_dir``; returns paths and metrics, never tensors.

    Retries belong to the flow: its retry resumes from the run's own ``last.ckpt``.
    """
    handlers = _bridge_logs()
    try:
        config = one_process_training(config)
        datamodule = datamodule_for(config.data)
        # the run records the exact store version it read (inside every checkpoint's config)
        data = config.data.model_copy(update={"version": datamodule.store_version})
        config = config.model_copy(update={"data": data})
        result = fit(
            config,
            datamodule,
            run_dir,
            resume=True,
            init_from=init_from,
            callbacks=[progress_for(config), *callbacks],
        )
    finally:
        for name, handler in zip(LIBRARY_LOGGERS, handlers, strict=True):
            logging.getLogger(name).removeHandler(handler)
    out = asdict(result)
    out["store_version"] = getattr(datamodule, "store_version", None)
    return out
