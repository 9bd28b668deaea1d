"""Champion registry: ``<storage>/registry/champion.json`` and an ``srgan-champion`` artifact."""

from __future__ import annotations

import json
import time
from typing import Any

import fsspec
from prefect import task
from prefect.artifacts import create_markdown_artifact

from tasks.storage import join, storage_root


def champion_path(storage: str | None) -> str:
    """Where the champion record lives."""
    return join(storage_root(storage), "registry", "champion.json")


def read_champion(storage: str | None) -> dict[str, Any] | None:
    """The current champion record, or None before the first promotion."""
    path = champion_path(storage)
    fs, fs_path = fsspec.core.url_to_fs(path)
    if not fs.exists(fs_path):
        return None
    with fs.open(fs_path, "r") as f:
        record: dict[str, Any] = json.load(f)
    return record


@task(name="promote-champion")
def promote_champion(storage: str | None, record: dict[str, Any]) -> dict[str, Any]:
    """Make ``record`` (checkpoint, metrics, run key, ...) the champion (atomic on local roots)."""
    record = {**record, "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = champion_path(storage)
    fs, fs_path = fsspec.core.url_to_fs(path)
    fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
    tmp = fs_path + ".tmp"
    with fs.open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    fs.mv(tmp, fs_path)
    create_markdown_artifact(
        key="srgan-champion",
        markdown=(
            f"# SRGAN champion\n\n- checkpoint: `{record['checkpoint']}`\n"
            f"- run: `{record.get('run_key')}`\n- promoted: {record['promoted_at']}\n"
            f"- {record.get('metric')}: {record.get('score')}\n"
        ),
        description="the checkpoint super-resolve uses for checkpoint='champion'",
    )
    return record
