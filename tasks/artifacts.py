"""Prefect artifacts of a training run: checkpoint links, metrics table, report, preview."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

METRICS = ("l1", "psnr", "ssim", "sam", "ergas")


def metrics_rows(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """Rows of metric, SRGAN (EMA) value, bicubic value and gain over bicubic (positive: better)."""
    rows = []
    for name in METRICS:
        if f"val_metrics/{name}" not in metrics:
            continue
        rows.append(
            {
                "metric": name,
                "srgan": round(metrics[f"val_metrics/{name}"], 5),
                "bicubic": round(metrics[f"val_metrics/bicubic_{name}"], 5),
                "gain": round(metrics[f"val_metrics/{name}_gain"], 5),
            }
        )
    return rows


def _link(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def _preview_markdown(preview: str | None) -> str:
    if not preview or not Path(preview).is_file():
        return "_no preview_"
    data = base64.b64encode(Path(preview).read_bytes()).decode()
    return f"LR | bicubic | SR | HR\n\n![preview](data:image/png;base64,{data})"


@task(name="register-training-artifacts")
def register_training_artifacts(
    result: dict[str, Any], config: dict[str, Any], key_prefix: str = "srgan"
) -> dict[str, str]:
    """Create the run's artifacts; returns their keys."""
    keys = {
        "best": f"{key_prefix}-best-checkpoint",
        "last": f"{key_prefix}-last-checkpoint",
        "metrics": f"{key_prefix}-validation-metrics",
        "report": f"{key_prefix}-training-report",
        "preview": f"{key_prefix}-preview",
    }
    for which in ("best", "last"):
        path = result.get(f"{which}_checkpoint")
        if path:
            create_link_artifact(
                key=keys[which], link=_link(path), link_text=path, description=f"{which} checkpoint"
            )
    rows = metrics_rows(result["metrics"])
    create_table_artifact(
        key=keys["metrics"], table=rows, description="validation metrics (EMA generator) vs bicubic"
    )
    table = "\n".join(
        f"| {r['metric']} | {r['srgan']} | {r['bicubic']} | {r['gain']:+} |" for r in rows
    )
    report = f"""# SRGAN training report

- run directory: `{result["run_dir"]}`
- patch store: `{config["data"]["store"]}` (version `{result.get("store_version")}`)
- iterations: {result["iteration"]} (resumed from `{result.get("resumed_from")}`)
- wall time: {result["seconds"]:.1f} s on {result["device"]}, precision {result["precision"]}
- best checkpoint: `{result.get("best_checkpoint")}`

## Validation (EMA generator) against bicubic

| metric | SRGAN | bicubic | gain |
|---|---|---|---|
{table}

## Configuration

```json
{json.dumps(config, indent=2)}
```
"""
    create_markdown_artifact(key=keys["report"], markdown=report, description="training report")
    create_markdown_artifact(
        key=keys["preview"],
        markdown=_preview_markdown(result.get("preview")),
        description="LR | bicubic | SR | HR",
    )
    return keys
