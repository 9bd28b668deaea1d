"""Flow ``retrain-srgan`` (scheduled as ``retrain-srgan/retrain-nightly``).

Tile new scenes, train a challenger warm-started from the champion, evaluate both on the same
validation patches, and promote the challenger only if it is better on the configured metric.
Every decision is recorded as an artifact (``retrain-decision``); a promoted challenger gets a
model card and a STAC MLM record (``srgan-model-card``, linked from ``srgan-champion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from prefect import flow, runtime
from pydantic import Field

from datasets.stac_search import StacSearch
from flows.tile import tile_sentinel2
from flows.train import train_srgan
from srgan.config import ValMetric
from tasks.credentials import s3_credentials
from tasks.evaluate import evaluate_checkpoints
from tasks.model_docs import document_model
from tasks.registry import ChampionRecord, promote_champion, read_champion
from tasks.retrain import RetrainDecision, Scores, decide, register_retrain_decision
from tasks.storage import default_store
from tasks.train import training_config


@dataclass(frozen=True)
class RetrainResult:
    """What ``retrain-srgan`` decided, on which scores, and the challenger's checkpoint."""

    decision: RetrainDecision
    scores: Scores
    challenger: str


@flow(name="retrain-srgan", log_prints=True)
def retrain_srgan(
    scenes: list[str] | None = None,
    scan: str | None = None,
    stac: StacSearch | None = None,
    store: str | None = None,
    storage: str | None = None,
    config: str = "cpu-tiny",
    overrides: dict[str, Any] | None = None,
    max_iterations: Annotated[int | None, Field(ge=1)] = None,
    metric: ValMetric = "psnr",
    min_gain: Annotated[float, Field(ge=0)] = 0.0,
    warm_start: bool = True,
    credentials_block: str | None = None,
) -> RetrainResult:
    """Retrain and promote only on improvement.

    Args:
        scenes: new scene URIs to tile first (optional).
        scan: folder or s3:// prefix to scan for new scenes (optional; known scenes are skipped).
        stac: a STAC API search for new scenes (optional; see ``tile-sentinel2``).
        store: patch store (default ``<storage>/patches/sentinel2.zarr``).
        storage: storage root (default ``$S2SR_STORAGE`` or ``./.s2sr``).
        config: training preset or YAML path for the challenger.
        overrides: nested config overrides.
        max_iterations: challenger training iterations (overrides the config).
        metric: validation metric that decides (``psnr``, ``ssim``, ``l1``, ``sam``, ``ergas``).
        min_gain: the challenger must beat the champion by more than this.
        warm_start: start the challenger from the champion's weights (else from scratch, e.g.
            after changing the architecture or when the champion has degraded).
        credentials_block: name of a ``Secret`` block holding the ``AWS_*`` variables for S3
            (default: the worker's environment); also passed to the tiling and training subflows.
    """
    with s3_credentials(credentials_block):
        target = store or default_store(storage)
        # a bad preset or override fails here, before any scene is tiled
        cfg = training_config(config, overrides or {}, target, max_iterations, None)
        if scenes or scan or stac:
            tile_sentinel2(
                scenes=scenes,
                scan=scan,
                stac=stac,
                store=target,
                storage=storage,
                credentials_block=credentials_block,
            )
        champion = read_champion(storage)
        run_key = f"retrain-{runtime.flow_run.id}"
        init_from = champion.checkpoint if champion and warm_start else None
        trained = train_srgan(
            store=target,
            config=config,
            overrides=overrides,
            storage=storage,
            run_key=run_key,
            max_iterations=max_iterations,
            init_from=init_from,
            credentials_block=credentials_block,
        )
        checkpoints = {"challenger": trained.fit.checkpoint}
        if champion:
            checkpoints["champion"] = champion.checkpoint
        data = cfg.data.model_copy(update={"version": trained.fit.store_version})
        scores = evaluate_checkpoints(checkpoints, data)
        decision = decide(scores, metric, min_gain)
        register_retrain_decision(decision, scores, checkpoints, metric, min_gain, data.version)
        if decision.promote:
            # the card and MLM record first: champion.json never names files that are missing
            card, mlm = document_model(
                storage,
                run_key,
                checkpoints["challenger"],
                scores["challenger"],
                trained.fit,
                init_from,
            )
            record = ChampionRecord(
                checkpoint=checkpoints["challenger"],
                run_key=run_key,
                metric=metric,
                score=decision.challenger_score,
                metrics=scores["challenger"],
                store=target,
                store_version=data.version,
                model_card=card,
                mlm_record=mlm,
            )
            promote_champion(storage, record)
        return RetrainResult(decision, scores, checkpoints["challenger"])
