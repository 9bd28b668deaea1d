"""Flow ``train-srgan``: fit the SRGAN on a patch store and register the results as artifacts.

Run it with ``prefect deployment run train-srgan/train-srgan``. Bad input fails the run at its
first attempt: the config and overrides are parsed before any task starts, and the training task
does not retry input errors (store missing or not matching, init-from architecture, unloadable
checkpoints; see ``tasks.train.INPUT_ERRORS``). Other training failures are retried by the task.
The run key defaults to the flow run id, so a retry (automatic, or ``prefect flow-run retry
<id>`` after a crash) finds its own ``last.ckpt`` and continues from the saved iteration.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, runtime
from pydantic import Field

from tasks.artifacts import register_training_artifacts
from tasks.storage import default_store, run_dir
from tasks.train import fit_srgan, training_config


# No flow-level retries: Prefect retries a flow on any failure, bad input included. The retries
# are on the training task, which skips them for input errors.
@flow(name="train-srgan", log_prints=True)
def train_srgan(
    store: str | None = None,
    config: str = "cpu-tiny",
    overrides: dict[str, Any] | None = None,
    storage: str | None = None,
    run_key: str | None = None,
    max_iterations: Annotated[int | None, Field(ge=1)] = None,
    max_epochs: Annotated[int | None, Field(ge=1)] = None,
    init_from: str | None = None,
) -> dict[str, Any]:
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
    """
    # ConfigError (unknown preset or key, invalid value) ends the run here, before any task
    cfg = training_config(
        config, overrides or {}, store or default_store(storage), max_iterations, max_epochs
    )
    key = run_key or str(runtime.flow_run.id)
    result = fit_srgan(cfg, run_dir(storage, key), init_from=init_from)
    keys = register_training_artifacts(result, cfg.model_dump(mode="json"))
    return {**result, "artifacts": keys, "run_key": key}
