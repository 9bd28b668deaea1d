"""Evaluate a checkpoint on a patch store: PSNR, SSIM, SAM, ERGAS, L1 against bicubic, and the
opensr-test improvement / omission / hallucination shares.

Every pair of the chosen split is super-resolved exactly as a scene tile would be (raw
reflectance ×10000 in, the checkpoint's normalisation applied and inverted around the generator:
:func:`~srgan.super_resolve_scene.scene_predictor`); metrics are computed in reflectance clipped
to [0, 1], so checkpoints trained with different normalisations compare on one scale.

Example::

    report = evaluate_store("best.ckpt", "patches.zarr", split="val")
    report.metrics["psnr"], report.metrics["bicubic_psnr"], report.shares.hallucination
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from datasets.errors import InferenceError, PatchStoreError
from datasets.patch_dataset import PatchDataset
from srgan.inference import InferenceModel, load_inference_model
from srgan.metrics import SHARES, SRValidationMetrics
from srgan.opensr_shares import CorrectnessShares
from srgan.super_resolve_scene import scene_predictor

REFLECTANCE_SCALE = 10000.0


@dataclass(frozen=True)
class StoreEvaluation:
    """What :func:`evaluate_store` measured.

    Attributes:
        checkpoint: The checkpoint; ``weights`` which of its generators.
        store: The patch store; ``store_version`` the version read; ``split`` the split.
        pairs: Number of (LR, HR) pairs evaluated.
        metrics: ``l1``, ``psnr``, ``ssim``, ``ergas`` (and ``sam`` with several bands, in
            radians) and the ``improvement``, ``omission`` and ``hallucination`` shares of SR,
            the same with a ``bicubic_`` prefix, and ``<name>_gain`` (positive: SR better than
            bicubic).
        shares: opensr-test improvement / omission / hallucination shares over all pairs
            (weighted by judged pixels).
    """

    checkpoint: str
    weights: str
    store: str
    store_version: str | None
    split: str
    pairs: int
    metrics: dict[str, float]
    shares: CorrectnessShares

    def as_dict(self) -> dict[str, Any]:
        """The evaluation as plain JSON-able data."""
        return asdict(self)


def evaluate_store(
    checkpoint: str | os.PathLike[str] | InferenceModel,
    store: str,
    *,
    split: str = "val",
    limit: int | None = None,
    batch_size: int = 16,
    version: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> StoreEvaluation:
    """Super-resolve the pairs of a store's split and score them with and without a reference.

    Args:
        checkpoint: Checkpoint path/URL or a loaded model.
        store: Patch store URI.
        split: ``"val"`` (default) or ``"train"``.
        limit: Evaluate at most this many pairs (in store order).
        batch_size: Pairs per generator call.
        version: Store version (default: the latest).
        storage_options: fsspec options of the store.
        device: Torch device (default: a GPU when present).

    Returns:
        The metrics, bicubic baselines and shares.

    Raises:
        PatchStoreError: The store is missing or the split holds no pair.
        CheckpointError: The checkpoint is missing or unusable.
        InferenceError: The store's bands or scale differ from the checkpoint's.
    """
    model = (
        checkpoint
        if isinstance(checkpoint, InferenceModel)
        else load_inference_model(checkpoint, device=device)
    )
    pairs = PatchDataset(store, split, "identity", version=version, storage_options=storage_options)
    if tuple(pairs.bands) != model.bands or pairs.scale != model.scale:
        raise InferenceError(
            f"patch store {store} holds bands {list(pairs.bands)} at ×{pairs.scale}, but "
            f"checkpoint {model.checkpoint} was trained on {list(model.bands)} at ×{model.scale}"
        )
    count = len(pairs) if limit is None else min(limit, len(pairs))
    if count == 0:
        raise PatchStoreError(f"the {split!r} split of patch store {store} holds no pair")
    predict = scene_predictor(model)
    metrics = SRValidationMetrics(model.scale, 1.0, len(model.bands))
    for first in range(0, count, batch_size):
        batch = [pairs[i] for i in range(first, min(first + batch_size, count))]
        lr = torch.stack([p[0] for p in batch])
        hr = torch.stack([p[1] for p in batch]) / REFLECTANCE_SCALE
        sr = (predict(lr).float().cpu() / REFLECTANCE_SCALE).clamp(0, 1)
        metrics.update(sr, lr / REFLECTANCE_SCALE, hr)
    scores = {k.removeprefix("val_metrics/"): v for k, v in metrics.compute().items()}
    improvement, omission, hallucination = (scores[name] for name in SHARES)
    shares = CorrectnessShares(improvement, omission, hallucination, metrics.judged_pixels)
    return StoreEvaluation(
        checkpoint=model.checkpoint,
        weights=model.weights,
        store=store,
        store_version=pairs.version,
        split=split,
        pairs=count,
        metrics=scores,
        shares=shares,
    )
