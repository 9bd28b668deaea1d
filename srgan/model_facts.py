"""What a model card and a STAC MLM record say about a trained checkpoint, gathered once.

The facts come from the checkpoint itself (its config, weights and recorded lineage), the
patch store it was trained on (scene ids and each scene's harmonisation), the validation
metrics it was promoted on, and the run that trained it (hardware, time).

Example::

    facts = model_facts("runs/r1/checkpoints/best.ckpt", metrics=scores, run=TrainingRun(...))
    model_card(facts), mlm_item(facts, href="best.ckpt").to_dict()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch

from datasets.errors import PatchStoreError
from datasets.storage_errors import StorageError
from datasets.store_radiometry import scene_rows
from datasets.version import software_version
from srgan.build import generator_from_config
from srgan.checkpointing import load_checkpoint
from srgan.config import TrainingConfig, validate_config
from srgan.inference import EMA_COUNT
from srgan.lineage import read_lineage
from srgan.provenance import file_sha256


@dataclass(frozen=True)
class TrainingScene:
    """One scene of the training store: its patches and the harmonisation applied to it.

    Attributes:
        scene: Scene id; ``train``/``val`` its patches in each split.
        harmonisation: Where the harmonisation decision came from (e.g. ``product-metadata``).
        baseline: Processing baseline; ``offset`` the radiometric offsets applied (DN).
    """

    scene: str
    train: int
    val: int
    harmonisation: str
    baseline: str
    offset: str


@dataclass(frozen=True)
class TrainingRun:
    """How the model was trained (from the fit's result).

    Attributes:
        run_key: The run folder's name; ``iterations`` the iterations trained.
        hardware: The device it trained on (e.g. ``cpu (2 threads)``, ``cuda:0 (NVIDIA H200)``).
        precision: The training precision (e.g. ``bf16-mixed``).
        seconds: Wall time of the fit (its last attempt, when it was resumed).
        warm_started_from: The checkpoint it was initialised from, if any.
    """

    run_key: str | None
    iterations: int
    hardware: str
    precision: str
    seconds: float
    warm_started_from: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """Everything the model card and the MLM record state.

    Attributes:
        name: Model name (``s2-srgan <run key>``).
        checkpoint: Its URI; ``checkpoint_sha256`` the hash of its bytes.
        config: The training configuration stored in the checkpoint.
        total_parameters: Parameters of the generator (the network inference runs).
        weights: ``"ema"`` (averaged generator) or ``"generator"``: what inference uses.
        store: Patch store trained on, at ``store_version``; ``degradation`` of its LR patches.
        scenes: The store's scenes with their harmonisation; ``scenes_note`` why they are
            missing when the store could not be read.
        metrics: Validation metrics (``val_metrics/*``, with ``bicubic_*`` and ``*_gain``).
        run: How it was trained.
        software: ``s2-srgan <version>``; ``framework_version`` the torch version.
        created: When the facts were gathered (promotion time), UTC.
    """

    name: str
    checkpoint: str
    checkpoint_sha256: str
    config: TrainingConfig
    total_parameters: int
    weights: str
    store: str | None
    store_version: str | None
    degradation: dict[str, Any] | None
    scenes: list[TrainingScene]
    scenes_note: str | None
    metrics: dict[str, float]
    run: TrainingRun
    software: str = field(default_factory=lambda: f"s2-srgan {software_version()}")
    framework_version: str = torch.__version__
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def bands(self) -> list[str]:
        """Input (and output) bands, in the order the network reads them."""
        return list(self.config.data.bands)

    @property
    def architecture(self) -> str:
        """The generator family (``srresnet``, ``rrdb``, ...)."""
        return self.config.generator.name


def training_scenes(
    store: str | None, version: str | None
) -> tuple[list[TrainingScene], str | None]:
    """The scenes of a store version with their harmonisation, or ``([], why not)``."""
    if not store:
        return [], "the checkpoint records no patch store (trained on in-memory pairs)"
    try:
        rows = scene_rows(store, version)
    except (PatchStoreError, StorageError) as err:
        return [], f"scenes unavailable: {err}"
    scenes = [
        TrainingScene(
            scene=str(r["scene"]),
            train=int(r["train"]),
            val=int(r["val"]),
            harmonisation=str(r["harmonisation"]),
            baseline=str(r["baseline"]),
            offset=str(r["offset"]),
        )
        for r in rows
    ]
    return scenes, None


def model_facts(checkpoint: str, metrics: dict[str, float], run: TrainingRun) -> ModelFacts:
    """Gather the facts about ``checkpoint`` for its model card and MLM record.

    Args:
        checkpoint: Checkpoint path or URI (an s2-srgan training checkpoint).
        metrics: Its validation metrics (``val_metrics/*`` with the bicubic baseline).
        run: How it was trained.

    Raises:
        CheckpointError: The checkpoint is missing or unusable.
        StorageError: It is on S3 and cannot be reached.
    """
    loaded = load_checkpoint(checkpoint)
    config = validate_config(loaded["hyper_parameters"]["config"])
    lineage = read_lineage(loaded)
    store = lineage.store or config.data.store
    version = lineage.store_version or config.data.version
    scenes, note = training_scenes(store, version)
    generator = generator_from_config(config)
    # the rule inference follows: the EMA generator once it has been updated
    ema_updates = loaded["state_dict"].get(EMA_COUNT)
    has_ema = ema_updates is not None and int(ema_updates) > 0
    return ModelFacts(
        name=f"s2-srgan {run.run_key or lineage.run_key or 'model'}",
        checkpoint=checkpoint,
        checkpoint_sha256=file_sha256(checkpoint),
        config=config,
        total_parameters=sum(p.numel() for p in generator.parameters()),
        weights="ema" if has_ema else "generator",
        store=store,
        store_version=version,
        degradation=lineage.degradation,
        scenes=scenes,
        scenes_note=note,
        metrics=dict(metrics),
        run=run,
    )
