"""Experiment tracking: the loggers of a run, chosen by ``trainer.logger``.

Every run writes its own ``logs/metrics.csv`` (:class:`~srgan.run_log.RunCSVLogger`, the record
the reports are drawn from). ``tensorboard`` adds Lightning's TensorBoard logger
(``<run_dir>/tensorboard``), ``mlflow`` Lightning's MLflow logger, both extended to take files:
the preview after each validation, and for MLflow the configuration (``config.json``) and the
loss curves at the end of the fit. :func:`log_champion` adds a promoted champion's checkpoint,
model card and MLM record to the MLflow run that trained it and registers it as the
``champion`` of the registered model ``s2-srgan``.

The MLflow run of a run folder is kept in ``<run_dir>/logs/mlflow.json``: a resumed run (a
retry of its flow run) goes on logging into the same MLflow run.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from srgan.config import ConfigError, LoggerConfig
from srgan.loss_curve import write_loss_curves
from srgan.run_log import RunCSVLogger

log = logging.getLogger(__name__)

MLFLOW_RUN_FILE = "mlflow.json"
#: The registered model every promoted champion becomes a version of.
REGISTERED_MODEL = "s2-srgan"
CHAMPION_ALIAS = "champion"


def run_loggers(logger: LoggerConfig, run_dir: str) -> list[Logger]:
    """The run's CSV log, and the tracking logger ``logger`` names.

    Raises:
        ConfigError: The tracker's package is not installed, or ``mlflow`` has no tracking URI.
    """
    loggers: list[Logger] = [RunCSVLogger(run_dir)]
    if logger.name == "tensorboard":
        loggers.append(_tensorboard(run_dir))
    elif logger.name == "mlflow":
        loggers.append(_mlflow(logger, run_dir))
    return loggers


def log_file(loggers: Sequence[Logger], path: str, folder: str, step: int) -> None:
    """Hand a file (a preview PNG) to every logger that takes files."""
    for logger in loggers:
        take = getattr(logger, "log_file", None)
        if take is not None:
            take(path, folder, step)


@contextmanager
def local_copy(path: str) -> Iterator[str]:
    """``path`` itself when local, else a temporary local copy of the remote file."""
    if "://" not in path or path.startswith("file://"):
        yield path.removeprefix("file://")
        return
    with tempfile.TemporaryDirectory(prefix="s2sr-track-") as tmp:
        local = str(Path(tmp) / path.rstrip("/").rsplit("/", 1)[-1])
        with fsspec.open(path, "rb") as src, open(local, "wb") as dst:
            dst.write(src.read())
        yield local


def _tensorboard(run_dir: str) -> Logger:
    from lightning.pytorch.loggers import TensorBoardLogger

    class RunTensorBoardLogger(TensorBoardLogger):
        """Lightning's TensorBoard logger; previews become images (the Images tab)."""

        @rank_zero_only
        def log_file(self, path: str, folder: str, step: int) -> None:
            if not path.endswith(".png") or self.experiment is None:
                return
            with fsspec.open(path, "rb") as file:
                image = np.asarray(Image.open(io.BytesIO(file.read())).convert("RGB"))
            self.experiment.add_image(folder, image, step, dataformats="HWC")

    try:
        return RunTensorBoardLogger(
            run_dir, name="tensorboard", version="", default_hp_metric=False
        )
    except ModuleNotFoundError:
        raise ConfigError(
            "trainer.logger=tensorboard needs the tensorboard package: pip install "
            "'s2-srgan[tensorboard]' (or set trainer.logger: csv)"
        ) from None


def _mlflow_names(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """MLflow's names for our keys: ``D(y)`` → ``D_y``, ``D(G(x))`` → ``D_G_x``."""
    return {re.sub(r"_+", "_", re.sub(r"[()]", "_", k)): v for k, v in metrics.items()}


def _mlflow(config: LoggerConfig, run_dir: str) -> Logger:
    from lightning.pytorch.loggers import MLFlowLogger

    tracking_uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ConfigError(
            "trainer.logger=mlflow needs a tracking server: set trainer.logger.tracking_uri "
            "(e.g. http://127.0.0.1:5000) or MLFLOW_TRACKING_URI"
        )
    record_uri = f"{run_dir.rstrip('/')}/logs/{MLFLOW_RUN_FILE}"
    recorded = read_mlflow_run(run_dir)
    server: str = tracking_uri
    run_id = recorded["run_id"] if recorded.get("tracking_uri") == server else None

    class RunMLflowLogger(MLFlowLogger):
        """Lightning's MLflow logger, also logging the config, previews and loss curves."""

        @rank_zero_only
        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            from mlflow.exceptions import MlflowException

            try:
                super().log_hyperparams(params)
            except MlflowException as err:  # a resumed run trained on with other settings
                log.warning("MLflow kept the parameters it logged first: %s", err)
            config_dict = params if isinstance(params, dict) else vars(params)
            self.experiment.log_dict(
                self.run_id, config_dict.get("config", config_dict), "config.json"
            )
            _write_record(record_uri, server, self.run_id, self.experiment_id)

        @rank_zero_only
        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            super().log_metrics(_mlflow_names(metrics), step)

        @rank_zero_only
        def log_file(self, path: str, folder: str, step: int) -> None:
            with local_copy(path) as local:
                self.experiment.log_artifact(self.run_id, local, folder)

        @rank_zero_only
        def finalize(self, status: str = "success") -> None:
            if self._initialized and status == "success":
                curves = write_loss_curves(run_dir)  # the CSV logger, first, has flushed
                if curves is not None:
                    self.log_file(curves, "loss_curves", 0)
            super().finalize(status)

    try:
        return RunMLflowLogger(
            experiment_name=config.experiment,
            run_name=run_dir.rstrip("/").rsplit("/", 1)[-1],
            tracking_uri=tracking_uri,
            run_id=run_id,
        )
    except ModuleNotFoundError:
        raise ConfigError(
            "trainer.logger=mlflow needs the mlflow package: pip install 's2-srgan[mlflow]' "
            "(or set trainer.logger: csv)"
        ) from None


def _write_record(
    uri: str, tracking_uri: str, run_id: str | None, experiment_id: str | None
) -> None:
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    record = {"tracking_uri": tracking_uri, "run_id": run_id, "experiment_id": experiment_id}
    with fs.open(path, "w") as file:
        file.write(json.dumps(record))


def read_mlflow_run(run_dir: str) -> dict[str, str]:
    """``{"tracking_uri", "run_id", "experiment_id"}`` of the run folder's MLflow run, or ``{}``
    when it was not tracked with MLflow."""
    try:
        with fsspec.open(f"{run_dir.rstrip('/')}/logs/{MLFLOW_RUN_FILE}", "r") as file:
            return dict(json.loads(file.read()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def log_champion(run_dir: str, checkpoint: str, files: Sequence[str]) -> str | None:
    """Add a promoted champion to the MLflow run that trained it, and register it.

    Logs ``checkpoint`` and ``files`` (model card, MLM record) under ``champion/``, tags the
    run ``s2sr.champion``, and makes it a version of the registered model ``s2-srgan`` with
    the alias ``champion``.

    Returns:
        The model version, or ``None`` when the run was not tracked with MLflow.

    Raises:
        mlflow.exceptions.MlflowException: The tracking server refused or is unreachable.
    """
    recorded = read_mlflow_run(run_dir)
    if not recorded.get("run_id"):
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(recorded["tracking_uri"])
    run_id = recorded["run_id"]
    for path in (checkpoint, *files):
        with local_copy(path) as local:
            client.log_artifact(run_id, local, "champion")
    client.set_tag(run_id, "s2sr.champion", "true")
    try:
        client.create_registered_model(REGISTERED_MODEL)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/champion"
    version = client.create_model_version(REGISTERED_MODEL, source, run_id=run_id)
    client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, version.version)
    return str(version.version)
