"""Prefect artifacts of a training run: checkpoint links, metrics table, report, preview."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from datasets.errors import PatchStoreError
from datasets.store_radiometry import scene_rows
from datasets.version import software_version
from srgan.config import METRIC_HIGHER_IS_BETTER, TrainingConfig
from srgan.loss_curve import write_loss_curves
from srgan.metrics import metric_rows
from srgan.train import FitResult

#: Validation metrics shown, in order: PSNR/SSIM/SAM/ERGAS/L1 and the opensr-test shares.
METRICS = tuple(METRIC_HIGHER_IS_BETTER)


def metrics_rows(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """Rows of metric, SRGAN (EMA) value, bicubic value and gain over bicubic (positive: better)."""
    return [
        {"metric": n, "srgan": round(m, 5), "bicubic": round(b, 5), "gain": round(g, 5)}
        for n, m, b, g in metric_rows(metrics)
    ]


def _link(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def _embedded_png(path: str | None, alt: str) -> str | None:
    """Markdown showing a PNG inline (a data URI: the artifact needs no file server)."""
    if not path:
        return None
    try:
        with fsspec.open(path, "rb") as file:  # local path or the run's s3:// folder
            data = base64.b64encode(file.read()).decode()
    except FileNotFoundError:
        return None
    return f"![{alt}](data:image/png;base64,{data})"


def _preview_markdown(preview: str | None) -> str:
    image = _embedded_png(preview, "preview")
    if image is None:
        return "_no preview_"
    return (
        "Validation samples (centre crops; each band stretched 2–98 % once for all panels)"
        f"\n\n{image}"
    )


def loss_curves_markdown(run_dir: str) -> str:
    """The run's loss curves (generator content / adversarial, D(y) / D(G(x))), drawn from
    its metric log into ``previews/loss_curves.png`` and shown inline."""
    image = _embedded_png(write_loss_curves(run_dir), "loss curves")
    return image or "_no training step logged_"


#: Most rows of the report's validation curve (first, best and last are always among them).
CURVE_ROWS = 12


def curve_markdown(history: list[dict[str, float]], best_metric: str = "l1") -> str:
    """A table of the validations of a run: at most :data:`CURVE_ROWS`, evenly spread.

    The first, the last and the best (by ``best_metric``) validation are always shown.
    """
    if not history:
        return "_no validation during training_"
    key = f"val_metrics/{best_metric}"
    sign = 1 if METRIC_HIGHER_IS_BETTER.get(best_metric, False) else -1
    scored = [i for i, row in enumerate(history) if key in row]
    best = max(scored, key=lambda i: sign * history[i][key]) if scored else None
    step = max(1, -(-len(history) // (CURVE_ROWS - 1)))
    chosen = {*range(0, len(history), step), len(history) - 1}
    if best is not None:
        chosen.add(best)
    names = [m for m in METRICS if f"val_metrics/{m}" in history[-1]]
    lines = [
        "| iteration | " + " | ".join(names) + " | PSNR gain over bicubic |",
        "|---" * (len(names) + 2) + "|",
    ]
    for i in sorted(chosen):
        row = history[i]
        cells = [f"{row.get(f'val_metrics/{m}', float('nan')):.5g}" for m in names]
        gain = row.get("val_metrics/psnr_gain", float("nan"))
        mark = " (best)" if i == best else ""
        cells.append(f"{gain:+.3f}")
        lines.append(f"| {int(row['iteration'])}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class TrainingArtifacts:
    """Keys of the Prefect artifacts of a training run."""

    best: str
    last: str
    metrics: str
    report: str
    preview: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TrainingArtifacts:
        """``<prefix>-best-checkpoint``, ``<prefix>-last-checkpoint``, ``<prefix>-validation-
        metrics``, ``<prefix>-training-report``, ``<prefix>-preview``."""
        return cls(
            best=f"{prefix}-best-checkpoint",
            last=f"{prefix}-last-checkpoint",
            metrics=f"{prefix}-validation-metrics",
            report=f"{prefix}-training-report",
            preview=f"{prefix}-preview",
        )


def training_data_markdown(store: str | None, version: str | None) -> str:
    """The scenes of the store version a run trained on: patches, harmonisation, cloud mask."""
    if not store:
        return "(no patch store recorded)"
    try:
        rows = scene_rows(store, version)
    except PatchStoreError as err:
        return f"(scenes unavailable: {err})"
    lines = [
        "| scene | train | val | harmonisation | baseline | offset | clamped px | cloud mask |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['scene']} | {r['train']} | {r['val']} | {r['harmonisation']} | {r['baseline']} "
        f"| {r['offset']} | {r['clamped']} | {r['mask']} |"
        for r in rows
    ]
    return "\n".join(lines)


@task(name="register-training-artifacts")
def register_training_artifacts(
    result: FitResult, config: TrainingConfig, key_prefix: str = "srgan"
) -> TrainingArtifacts:
    """Create the run's artifacts: checkpoint links, metrics table, report, preview."""
    keys = TrainingArtifacts.with_prefix(key_prefix)
    for key, path, which in (
        (keys.best, result.best_checkpoint, "best"),
        (keys.last, result.last_checkpoint, "last"),
    ):
        if path:
            create_link_artifact(
                key=key, link=_link(path), link_text=path, description=f"{which} checkpoint"
            )
    rows = metrics_rows(result.metrics)
    create_table_artifact(
        key=keys.metrics, table=rows, description="validation metrics (EMA generator) vs bicubic"
    )
    table = "\n".join(
        f"| {r['metric']} | {r['srgan']} | {r['bicubic']} | {r['gain']:+} |" for r in rows
    )
    curve = curve_markdown(result.metric_history, config.validation.best_metric)
    data = training_data_markdown(config.data.store, result.store_version)
    report = f"""# SRGAN training report

- run directory: `{result.run_dir}`
- patch store: `{config.data.store}` (version `{result.store_version}`)
- iterations: {result.iteration} (resumed from `{result.resumed_from}`)
- wall time: {result.seconds:.1f} s on {result.device}, precision {result.precision}
- step settings: {result.step_settings.describe() if result.step_settings else "–"}
- best checkpoint: `{result.best_checkpoint}`
- software: s2-srgan {software_version()}

## Validation (EMA generator) against bicubic

| metric | SRGAN | bicubic | gain |
|---|---|---|---|
{table}

## Validation during training

{curve}

## Loss curves

{loss_curves_markdown(result.run_dir)}

## Training data

{data}

## Configuration

```json
{json.dumps(config.model_dump(mode="json"), indent=2)}
```
"""
    create_markdown_artifact(key=keys.report, markdown=report, description="training report")
    create_markdown_artifact(
        key=keys.preview,
        markdown=_preview_markdown(result.preview),
        description="LR | bicubic | SR | HR (validation crops)",
    )
    return keys
