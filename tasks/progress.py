"""A Lightning callback reporting training progress to Prefect (logs and a progress artifact)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from lightning.pytorch import Callback, LightningModule, Trainer
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger


class PrefectProgress(Callback):
    """Every ``every_n_iterations``: a log line with the losses and the progress artifact updated.

    Args:
        max_iterations: iterations the run will reach (for the percentage).
        every_n_iterations: reporting interval.
        key: artifact key (lowercase, dashes).
    """

    def __init__(
        self,
        max_iterations: int,
        every_n_iterations: int = 10,
        key: str = "srgan-training-progress",
    ) -> None:
        self.max_iterations = max(1, max_iterations)
        self.every = every_n_iterations
        self.key = key
        self.artifact_id: UUID | None = None

    def _percent(self, iteration: int) -> float:
        return round(100.0 * min(iteration, self.max_iterations) / self.max_iterations, 1)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        iteration = int(getattr(pl_module, "iteration", 0))
        self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
            progress=self._percent(iteration),
            key=self.key,
            description=f"SRGAN training: iteration {iteration} of {self.max_iterations}",
        )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        iteration = int(getattr(pl_module, "iteration", 0))
        if iteration % self.every and iteration != self.max_iterations:
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
            "iteration %d/%d (%s) %s", iteration, self.max_iterations, phase, " ".join(parts)
        )
        if self.artifact_id is not None:
            update_progress_artifact(self.artifact_id, progress=self._percent(iteration))

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
