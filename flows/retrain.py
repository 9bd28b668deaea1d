"""Flow ``retrain-srgan`` (scheduled as ``retrain-srgan/retrain-nightly``).

Tile new scenes, train a challenger warm-started from the champion, evaluate both on the same
validation patches, and promote the challenger only if it is better on the configured metric.
Every decision is recorded as an artifact (``retrain-decision``).
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.tile import tile_sentinel2
from flows.train import train_srgan
from srgan.config import METRIC_HIGHER_IS_BETTER, ValMetric
from tasks.credentials import s3_credentials
from tasks.evaluate import evaluate_checkpoints
from tasks.registry import promote_champion, read_champion
from tasks.storage import default_store
from tasks.train import training_config


def is_better(challenger: float, champion: float, metric: str, min_gain: float) -> bool:
    """Whether the challenger beats the champion by more than ``min_gain`` on ``metric``."""
    gain = challenger - champion if METRIC_HIGHER_IS_BETTER[metric] else champion - challenger
    return gain > min_gain


@flow(name="retrain-srgan", log_prints=True)
def retrain_srgan(
    scenes: list[str] | None = None,
    scan: str | None = None,
    store: str | None = None,
    storage: str | None = None,
    config: str = "cpu-tiny",
    overrides: dict[str, Any] | None = None,
    max_iterations: Annotated[int | None, Field(ge=1)] = None,
    metric: ValMetric = "psnr",
    min_gain: Annotated[float, Field(ge=0)] = 0.0,
    warm_start: bool = True,
    credentials_block: str | None = None,
) -> dict[str, Any]:
    """Retrain and promote only on improvement.

    Args:
        scenes: new scene URIs to tile first (optional).
        scan: folder or s3:// prefix to scan for new scenes (optional; known scenes are skipped).
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
        if scenes or scan:
            tile_sentinel2(
                scenes=scenes,
                scan=scan,
                store=target,
                storage=storage,
                credentials_block=credentials_block,
            )
        champion = read_champion(storage)
        run_key = f"retrain-{runtime.flow_run.id}"
        trained = train_srgan(
            store=target,
            config=config,
            overrides=overrides,
            storage=storage,
            run_key=run_key,
            max_iterations=max_iterations,
            init_from=champion["checkpoint"] if champion and warm_start else None,
            credentials_block=credentials_block,
        )
        challenger_ckpt = trained["best_checkpoint"] or trained["last_checkpoint"]
        checkpoints = {"challenger": challenger_ckpt}
        if champion:
            checkpoints["champion"] = champion["checkpoint"]
        data = cfg.data.model_copy(update={"version": trained.get("store_version")})
        scores = evaluate_checkpoints(checkpoints, data)
        key = f"val_metrics/{metric}"
        challenger_score = scores["challenger"][key]
        champion_score = scores["champion"][key] if champion else None
        promote = champion_score is None or is_better(
            challenger_score, champion_score, metric, min_gain
        )
        reason = (
            "no champion yet"
            if champion_score is None
            else f"challenger {metric} {challenger_score:.5f} vs champion {champion_score:.5f}"
        )
        rows = [
            {"model": name, **{k.removeprefix("val_metrics/"): round(v, 5) for k, v in m.items()}}
            for name, m in scores.items()
        ]
        create_table_artifact(
            key="retrain-evaluation", table=rows, description="same validation patches"
        )
        decision = "promoted" if promote else "kept champion"
        create_markdown_artifact(
            key="retrain-decision",
            markdown=(
                f"# Retrain decision: {decision}\n\n- metric: `{metric}` (min gain {min_gain})\n"
                f"- {reason}\n- challenger: `{challenger_ckpt}`\n"
                f"- champion: `{champion['checkpoint'] if champion else None}`\n"
                f"- store version: `{data.version}`\n"
            ),
            description="champion/challenger decision",
        )
        if promote:
            promote_champion(
                storage,
                {
                    "checkpoint": challenger_ckpt,
                    "run_key": run_key,
                    "metric": metric,
                    "score": challenger_score,
                    "metrics": scores["challenger"],
                    "store": target,
                    "store_version": data.version,
                },
            )
        return {
            "decision": decision,
            "reason": reason,
            "scores": scores,
            "challenger": challenger_ckpt,
        }
