"""Flow ``train-srgan``: fit the SRGAN on a patch store and register the results as artifacts.

Run it with ``prefect deployment run train-srgan/train-srgan``. The flow retries on failure; the
run key defaults to the flow run id, so a retry (automatic, or ``prefect flow-run retry <id>``
after a crash) finds its own ``last.ckpt`` and continues from the saved iteration. Bad input
fails the run at its first attempt: the config and overrides are parsed before any task starts,
and an input error (see ``tasks.train.INPUT_ERRORS``: store missing or not matching, init-from
architecture, unloadable checkpoints, NaN loss, a missing or malformed ``credentials_block``,
storage that refuses access or lacks the bucket or prefix, a run folder in use by another run)
ends the run's remaining retries and is logged as one line (its traceback at DEBUG level).
A second run with the run key of a run still training is refused at once, naming that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from prefect import flow, runtime
from pydantic import Field

from srgan.train import FitResult
from tasks.artifacts import TrainingArtifacts, register_training_artifacts
from tasks.credentials import s3_credentials
from tasks.error_logs import one_line_input_errors
from tasks.storage import default_store, run_dir
from tasks.train import end_flow_retries, fit_srgan, is_input_error, training_config


@dataclass(frozen=True)
class TrainingRun:
    """What ``train-srgan`` produced: the fit, the run key it trained under, its artifacts."""

    run_key: str
    fit: FitResult
    artifacts: TrainingArtifacts


@flow(name="train-srgan", retries=2, retry_delay_seconds=5, log_prints=True)
def train_srgan(
    store: str | None = None,
    config: str = "cpu-tiny",
    overrides: dict[str, Any] | None = None,
    storage: str | None = None,
    run_key: str | None = None,
    max_iterations: Annotated[int | None, Field(ge=1)] = None,
    max_epochs: Annotated[int | None, Field(ge=1)] = None,
    init_from: str | None = None,
    credentials_block: str | None = None,
) -> TrainingRun:
    """Train an SRGAN.

    Args:
        store: patch store URI (default: ``<storage>/patches/sentinel2.zarr``).
        config: preset name (``cpu-tiny``, ``s2-10m-rgbn-x4``, ``s2-20m-6band-x2``) or YAML path.
        overrides: nested config overrides, e.g. ``{"generator": {"channels": 32}}``.
        storage: storage root (default ``$S2SR_STORAGE`` or ``./.s2sr``), local or ``s3://``.
        run_key: run folder name under ``<storage>/runs/`` (default: the flow run id).
        max_iterations: training iterations (batches), overriding the config.
        max_epochs: epoch limit, overriding the config.
        init_from: checkpoint to warm-start from (weights only).
        credentials_block: name of a ``Secret`` block holding the ``AWS_*`` variables for S3
            (default: the worker's environment, ``~/.aws`` or the instance role).
    """
    one_line_input_errors(is_input_error)
    key = run_key or str(runtime.flow_run.id)
    try:
        with s3_credentials(credentials_block):
            # a ConfigError (unknown preset or key, bad value) ends the run here, before any task
            cfg = training_config(
                config, overrides or {}, store or default_store(storage), max_iterations, max_epochs
            )
            result = fit_srgan(cfg, run_dir(storage, key), init_from=init_from)
            # the report shows the config the run trained with, its store version pinned
            data = cfg.data.model_copy(update={"version": result.store_version})
            keys = register_training_artifacts(result, cfg.model_copy(update={"data": data}))
    except Exception as err:
        if is_input_error(err):  # another attempt would fail the same way
            end_flow_retries()
        raise
    return TrainingRun(run_key=key, fit=result, artifacts=keys)
