"""The model card and STAC MLM record of a champion, written before it is promoted.

Both go to ``<storage>/registry/champions/<run-key>/`` (``model-card.md``, ``mlm-item.json``),
one folder per promoted champion, so earlier champions keep theirs; ``champion.json`` names
them, and the ``srgan-model-card`` artifact shows the card. A champion trained with
``trainer.logger: mlflow`` is also logged to its MLflow run and registered there
(:func:`srgan.tracking.log_champion`).
"""

from __future__ import annotations

import json

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from srgan.mlm_record import mlm_item
from srgan.model_card import model_card
from srgan.model_facts import TrainingRun, model_facts
from srgan.tracking import log_champion
from srgan.train import FitResult
from tasks.storage import join, put_text, storage_root

CARD_NAME = "model-card.md"
MLM_NAME = "mlm-item.json"


def champion_folder(storage: str | None, run_key: str) -> str:
    """``<storage>/registry/champions/<run-key>``."""
    return join(storage_root(storage), "registry", "champions", run_key)


@task(name="document-model")
def document_model(
    storage: str | None,
    run_key: str,
    checkpoint: str,
    metrics: dict[str, float],
    fit: FitResult,
    warm_started_from: str | None = None,
) -> tuple[str, str]:
    """Write the model card and the MLM record of ``checkpoint``; returns their URIs.

    Args:
        storage: Storage root.
        run_key: The training run (names the folder).
        checkpoint: The model's checkpoint.
        metrics: Its validation metrics (``val_metrics/*`` with the bicubic baseline).
        fit: The fit that trained it (hardware, precision, time, iterations).
        warm_started_from: The checkpoint its training started from, if any.

    Raises:
        CheckpointError: The checkpoint is missing or unusable.
    """
    run = TrainingRun(
        run_key=run_key,
        iterations=fit.iteration,
        hardware=fit.device,
        precision=fit.precision,
        seconds=fit.seconds,
        warm_started_from=warm_started_from,
    )
    facts = model_facts(checkpoint, metrics, run)
    folder = champion_folder(storage, run_key)
    card_uri, mlm_uri = join(folder, CARD_NAME), join(folder, MLM_NAME)
    card = model_card(facts, mlm_href=mlm_uri)
    put_text(mlm_uri, json.dumps(mlm_item(facts, card_href=card_uri).to_dict(), indent=2))
    put_text(card_uri, card)
    create_markdown_artifact(key="srgan-model-card", markdown=card, description=facts.name)
    try:
        version = log_champion(fit.run_dir, checkpoint, [card_uri, mlm_uri])
    except Exception as err:  # the tracker is a copy for people; the registry is champion.json
        get_run_logger().warning("could not log the champion to MLflow: %s", err)
    else:
        if version is not None:
            get_run_logger().info("champion registered in MLflow as s2-srgan version %s", version)
    return card_uri, mlm_uri
