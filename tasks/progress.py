"""A Lightning callback reporting training progress to Prefect (logs and a progress artifact).

A flow run has one progress artifact, whatever its attempts: a retry that resumes training
continues the artifact of the crashed attempt instead of leaving it behind at its last value.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from lightning.pytorch import Callback, LightningModule, Trainer
from prefect import runtime
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

#: Key of the training run's progress artifact.
PROGRESS_KEY = "srgan-training-progress"


def _flow_run_artifact(key: str) -> UUID | None:
    """The id of this flow run's artifact ``key`` made by an earlier attempt, if any."""
    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    only = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))]),
        key=ArtifactFilterKey(any_=[key]),
    )
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=only, limit=1)
    return found[0].id if found else None


def report_progress(progress: float, description: str, key: str = PROGRESS_KEY) -> UUID:
    """Set this flow run's progress artifact ``key`` (created by the first attempt, continued by
    the retries); returns its id."""
    existing = _flow_run_artifact(key)
    if existing is None:
        return create_progress_artifact(  # type: ignore[return-value]
            progress=progress, key=key, description=description
        )
    update_progress_artifact(existing, progress=progress, description=description)
    return existing


class PrefectProgress(Callback):
    """Every ``every_n_iterations``: a log line with the losses and the progress artifact updated.

    The total is the number of iterations (batches) the run will reach: ``max_iterations``, or
    the batches of ``max_epochs`` epochs when that comes first or is the only limit. It is read
    from ``trainer.estimated_stepping_batches`` when training starts, not from
    ``trainer.global_step``, which advances twice per adversarial batch.

    Args:
        max_iterations: ``schedule.max_iterations`` (None: the run is bounded by epochs only).
        every_n_iterations: reporting interval.
        key: artifact key (lowercase, dashes).
    """

    def __init__(
        self,
        max_iterations: int | None,
        every_n_iterations: int = 10,
        key: str = PROGRESS_KEY,
    ) -> None:
        self.max_iterations = max_iterations
        self.total: int | None = max_iterations
        self.every = every_n_iterations
        self.key = key
        self.artifact_id: UUID | None = None

    def _percent(self, iteration: int) -> float:
        if not self.total:
            return 0.0
        return round(100.0 * min(iteration, self.total) / self.total, 1)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.total = planned_iterations(trainer, self.max_iterations)
        iteration = int(getattr(pl_module, "iteration", 0))
        self.artifact_id = report_progress(
            self._percent(iteration),
            f"SRGAN training: iteration {iteration} of {self.total or '?'}",
            self.key,
        )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        iteration = int(getattr(pl_module, "iteration", 0))
        if iteration % self.every and iteration != self.total:
            return
        metrics = trainer.callback_metrics
        labels = {
            "generator/content_loss": "content",
            "generator/adversarial_loss": "g_adv",
            "discriminator/adversarial_loss": "d_adv",
        }
        parts = [f"{label}={float(metrics[k]):.4g}" for k, label in labels.items() if k in metrics]
        phase = (
            "pretraining"
            if getattr(pl_module, "is_pretraining", lambda: False)()
            else "adversarial"
        )
        get_run_logger().info(
            "iteration %d/%s (%s) %s", iteration, self.total or "?", phase, " ".join(parts)
        )
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, progress=self._percent(iteration))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # fit ended normally: a limit was reached, even if the total was an estimate
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, progress=100.0)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = getattr(pl_module, "last_val_metrics", {})
        if metrics and not trainer.sanity_checking:
            get_run_logger().info(
                "validation at iteration %d: PSNR %.2f dB (bicubic %.2f), SSIM %.4f (bicubic %.4f)",
                int(getattr(pl_module, "iteration", 0)),
                metrics.get("val_metrics/psnr", float("nan")),
                metrics.get("val_metrics/bicubic_psnr", float("nan")),
                metrics.get("val_metrics/ssim", float("nan")),
                metrics.get("val_metrics/bicubic_ssim", float("nan")),
            )


def planned_iterations(trainer: Trainer, max_iterations: int | None) -> int | None:
    """Iterations (batches) a fit will reach: the smaller of ``max_iterations`` and the batches
    of ``trainer.max_epochs`` epochs; None when neither is known (no epoch limit and a loader
    without a length).
    """
    limits = [max_iterations] if max_iterations else []
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        # batches × max_epochs: max_steps is -1 and gradients are not accumulated, so each
        # "stepping batch" is one iteration of the module's counter
        by_epochs = trainer.estimated_stepping_batches
        if math.isfinite(by_epochs):
            limits.append(int(by_epochs))
    return max(1, min(limits)) if limits else None
