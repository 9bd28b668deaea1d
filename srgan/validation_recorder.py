"""The record of a fit's validations: the metric history and the preview images.

The history (one row per validation of the fit, kept across resumes in the checkpoint) feeds the
training report's curve; the previews show LR | bicubic | SR | HR for the first samples of the
first validation batch after each validation.

Example::

    recorder = ValidationRecorder(config.validation, preview_dir="runs/a/previews")
    Trainer(callbacks=[recorder]).fit(SRGANModule(config), datamodule)
    recorder.history[-1]["val_metrics/psnr"], recorder.last_preview
"""

from __future__ import annotations

from typing import Any, cast

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from srgan.config import ValidationConfig
from srgan.metrics import bicubic_upsample
from srgan.module import CHECKPOINT_KEY, SRGANModule
from srgan.preview import preview_grid, write_previews
from srgan.tracking import log_file


class ValidationRecorder(Callback):
    """Keep every validation's metrics of a fit and write a preview after each validation.

    Args:
        validation: Reads ``preview_bands`` (three band indices shown as R, G, B),
            ``preview_samples`` (rows of the preview) and ``preview_crop`` (HR pixels shown).
        preview_dir: Local folder or fsspec URL of the previews (``None``: no previews).

    Attributes:
        history: ``{"iteration": ..., "val_metrics/<name>": ...}`` per validation during fit
            (a stand-alone ``validate`` adds none), restored from the checkpoint on resume.
        last_preview: Path of the latest preview written, if any.
    """

    def __init__(self, validation: ValidationConfig, preview_dir: str | None = None) -> None:
        self.preview_bands = list(validation.preview_bands)
        self.preview_samples = validation.preview_samples
        self.preview_crop = validation.preview_crop
        self.preview_dir = preview_dir
        self.history: list[dict[str, float]] = []
        self.last_preview: str | None = None
        self._first_batch: tuple[Tensor, Tensor, Tensor] | None = None

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and isinstance(outputs, Tensor):
            lr, hr = batch
            n = self.preview_samples
            self._first_batch = (
                lr[:n].detach().float().cpu(),
                outputs[:n].detach().float().cpu(),
                hr[:n].detach().float().cpu(),
            )

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        module = cast(SRGANModule, pl_module)
        if trainer.state.fn == "fit":
            self.history.append({"iteration": float(module.iteration), **module.last_val_metrics})
        # under DDP the ranks would race on the same files
        if (
            self.preview_dir is not None
            and self._first_batch is not None
            and trainer.is_global_zero
        ):
            lr, sr, hr = self._first_batch
            bicubic = bicubic_upsample(lr, hr.shape[-1] // lr.shape[-1])
            grid = preview_grid(
                lr,
                bicubic,
                sr,
                hr,
                self.preview_bands,
                self.preview_samples,
                crop=self.preview_crop,
            )
            self.last_preview = write_previews(grid, self.preview_dir, module.iteration)
            log_file(trainer.loggers, self.last_preview, "previews", module.iteration)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint.setdefault(CHECKPOINT_KEY, {})["val_history"] = [dict(r) for r in self.history]

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        rows = checkpoint.get(CHECKPOINT_KEY, {}).get("val_history", [])
        self.history = [dict(row) for row in rows]
