"""The training task: fit the SRGAN on a patch store, resuming the run's own checkpoints."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from srgan.config import TrainingConfig, load_config
from srgan.train import fit
from tasks.data import datamodule_for
from tasks.progress import PrefectProgress

# Library loggers whose records should reach the Prefect run logs.
LIBRARY_LOGGERS = ("srgan", "datasets", "lightning.pytorch")


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
    """Fit (or resume) the SRGAN into ``run_dir``; returns paths and metrics, never tensors."""
    handlers = _bridge_logs()
    try:
        datamodule = datamodule_for(config.data)
        # the run records the exact store version it read (inside every checkpoint's config)
        data = config.data.model_copy(update={"version": datamodule.store_version})
        config = config.model_copy(update={"data": data})
        max_it = config.schedule.max_iterations or 0
        progress = PrefectProgress(
            max_it, every_n_iterations=max(1, config.trainer.log_every_n_iterations)
        )
        result = fit(
            config,
            datamodule,
            run_dir,
            resume=True,
            init_from=init_from,
            callbacks=[progress, *callbacks],
        )
    finally:
        for name, handler in zip(LIBRARY_LOGGERS, handlers, strict=True):
            logging.getLogger(name).removeHandler(handler)
    out = asdict(result)
    out["store_version"] = getattr(datamodule, "store_version", None)
    return out
