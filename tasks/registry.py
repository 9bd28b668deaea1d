"""The champion registry: ``<storage>/registry/champion.json``, its record, reader and writer.

The champion is the checkpoint ``super-resolve`` uses for ``checkpoint="champion"`` and the one
``retrain-srgan`` warm-starts from and must beat. Its record is written by ``promote-champion``
(also as the ``srgan-champion`` artifact); a hand-written ``{"checkpoint": "<uri>"}`` is a valid
record too. A relative checkpoint path in the file is relative to the storage root.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import fsspec
from prefect import task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks.storage import join, put_text, storage_root

#: The ``checkpoint`` value that stands for the registered champion.
CHAMPION = "champion"


class ChampionError(LookupError):
    """The champion was asked for, but ``champion.json`` is absent or unusable."""


class ChampionRecord(BaseModel):
    """What ``champion.json`` holds.

    Attributes:
        checkpoint: The champion's checkpoint: a path, an ``s3://`` URI, or a path relative to
            the storage root.
        run_key: The training run that produced it.
        metric: The validation metric it won on, and ``score`` its value there.
        metrics: All its validation metrics (``val_metrics/*``) at promotion.
        store: The patch store it was evaluated on, at ``store_version``.
        promoted_at: UTC time of the promotion (ISO 8601).
        model_card: Its model card (markdown); ``mlm_record`` its STAC MLM Item (JSON).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    checkpoint: str = Field(min_length=1)
    run_key: str | None = None
    metric: str | None = None
    score: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    store: str | None = None
    store_version: str | None = None
    promoted_at: str | None = None
    model_card: str | None = None
    mlm_record: str | None = None


def champion_path(storage: str | None) -> str:
    """``<storage>/registry/champion.json``."""
    return join(storage_root(storage), "registry", "champion.json")


def read_champion(storage: str | None) -> ChampionRecord | None:
    """The current champion (its checkpoint resolved against the storage root), or ``None``
    before the first promotion.

    Raises:
        ChampionError: ``champion.json`` is not valid JSON or names no checkpoint.
    """
    path = champion_path(storage)
    try:
        with fsspec.open(path, "r") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ChampionError(f"{path} is not valid JSON ({err}); fix or remove it") from None
    try:
        record = ChampionRecord.model_validate(data)
    except ValidationError:
        raise ChampionError(
            f'{path} names no checkpoint; expected {{"checkpoint": "<uri>", ...}}'
        ) from None
    uri = record.checkpoint
    if "://" not in uri and not uri.startswith("/"):
        record = record.model_copy(update={"checkpoint": join(storage_root(storage), uri)})
    return record


def _link(uri: str | None) -> str:
    """A markdown link to a local file or URL (``none`` without one)."""
    if uri is None:
        return "none"
    href = uri if "://" in uri else Path(uri).resolve().as_uri()
    return f"[{uri}]({href})"


@task(name="resolve-checkpoint")
def resolve_checkpoint(checkpoint: str, storage: str | None = None) -> str:
    """The checkpoint URI to use: ``checkpoint`` itself, or the champion's for ``"champion"``.

    Raises:
        ChampionError: ``"champion"`` asked for and no usable champion is registered.
    """
    if checkpoint != CHAMPION:
        return checkpoint
    champion = read_champion(storage)
    if champion is None:
        raise ChampionError(
            f"no champion registered ({champion_path(storage)} does not exist); train one with "
            "the train-srgan or retrain-srgan flow, or pass checkpoint=<path or s3:// URI of a "
            ".ckpt>"
        )
    return champion.checkpoint


@task(name="promote-champion")
def promote_champion(storage: str | None, record: ChampionRecord) -> ChampionRecord:
    """Make ``record`` the champion, stamped with the time (atomic on local roots)."""
    record = record.model_copy(
        update={"promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    )
    put_text(champion_path(storage), json.dumps(record.model_dump(mode="json"), indent=2))
    create_markdown_artifact(
        key="srgan-champion",
        markdown=(
            f"# SRGAN champion\n\n- checkpoint: `{record.checkpoint}`\n"
            f"- run: `{record.run_key}`\n- promoted: {record.promoted_at}\n"
            f"- {record.metric}: {record.score}\n"
            f"- model card: {_link(record.model_card)}\n"
            f"- STAC MLM record: {_link(record.mlm_record)}\n"
        ),
        description="the checkpoint super-resolve uses for checkpoint='champion'",
    )
    return record
