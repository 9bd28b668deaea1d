"""The STAC Machine Learning Model (MLM) record of a trained checkpoint, built with pystac-ext-mlm.

A STAC 1.1 Item with the MLM extension (v1.4) and the eo extension (the model asset's bands):
input bands in order, value scaling of the normalisation, output, architecture and parameter
count, framework, hardware it trained on; besides, ``s2sr:training`` (store, version, scenes
with their harmonisation, degradation, run, time) and ``s2sr:validation`` (validation metrics
with the bicubic baseline). Assets: ``model`` (the checkpoint, role ``mlm:model``) and, when
given, ``model-card``. A model has no footprint: ``geometry`` is null.

Example::

    item = mlm_item(facts, card_href="model-card.md")
    item.to_dict()  # validates against the MLM v1.4.0 schema
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import pystac
from pystac.extensions.eo import EOExtension
from pystac.extensions.mlm import (
    AcceleratorType,
    Hyperparameters,
    InputStructure,
    MLMExtension,
    ModelInput,
    ModelOutput,
    ProcessingExpression,
    ResultStructure,
    TaskType,
    ValueScaling,
    ValueScalingType,
)
from pystac.extensions.raster import DataType

from datasets.normalise import NormalisationName
from srgan.model_facts import ModelFacts
from srgan.provenance import eo_bands

#: The model asset: a Lightning checkpoint written with ``torch.save`` (weights-only loadable).
ARTIFACT_TYPE = "torch.save"
CHECKPOINT_MEDIA_TYPE = "application/octet-stream; application=pytorch"
DIMS = ["batch", "channel", "height", "width"]


def value_scaling(normalisation: NormalisationName) -> list[dict[str, Any]] | None:
    """The MLM value scaling of a normalisation of reflectance ×10000 (one object for all bands).

    ``normalise_10k``: ``x / 10000`` (min-max 0…10000); ``normalise_10k_signed``: ``x / 5000 − 1``
    (min-max 5000…10000); ``zero_one``: a per-patch min-max, only expressible as the Python
    function; ``identity``: none.
    """
    if normalisation == "identity":
        return None
    if normalisation == "zero_one":
        scaling = ValueScaling.create(
            ValueScalingType.PROCESSING,
            format="python",
            expression="datasets.normalise:normalise(x, 'zero_one', reference=lr)",
        )
    else:
        low = 0 if normalisation == "normalise_10k" else 5000
        scaling = ValueScaling.create(ValueScalingType.MIN_MAX, minimum=low, maximum=10000)
    return [scaling.to_dict()]


def _model_input(facts: ModelFacts) -> ModelInput:
    bands, norm = facts.bands, facts.config.data.normalisation
    model_input = ModelInput.create(
        name=f"Sentinel-2 {' '.join(bands)} reflectance",
        bands=bands,
        input=InputStructure.create([-1, len(bands), -1, -1], DIMS, DataType.FLOAT32),
        description=(
            "Harmonised top-of-atmosphere or surface reflectance ×10000 (uint16 on disk, "
            f"processing baseline offset removed), normalised with {norm}; any height and width "
            "(fully convolutional)"
        ),
        pre_processing_function=ProcessingExpression.create(
            "python", f"datasets.normalise:normalise(x, '{norm}')"
        ),
    )
    # pystac-ext-mlm writes one object; the schema wants an array (or null)
    model_input.properties["value_scaling"] = value_scaling(norm)
    return model_input


def _model_output(facts: ModelFacts) -> ModelOutput:
    bands, scale = facts.bands, facts.config.data.scale
    return ModelOutput.create(
        name=f"super-resolved reflectance ×{scale}",
        tasks=[TaskType.SUPER_RESOLUTION],
        result=ResultStructure.create([-1, len(bands), -1, -1], DIMS, DataType.FLOAT32),
        description=(
            f"The same bands ({', '.join(bands)}) at {scale}× the input's height and width, "
            "normalised like the input"
        ),
        post_processing_function=ProcessingExpression.create(
            "python", f"datasets.normalise:denormalise(y, '{facts.config.data.normalisation}')"
        ),
    )


def _accelerator(hardware: str) -> AcceleratorType:
    return AcceleratorType.CUDA if hardware.startswith("cuda") else AcceleratorType.AMD64


def item_id(name: str) -> str:
    """A file- and URL-safe Item id from a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "s2-srgan-model"


def mlm_item(facts: ModelFacts, card_href: str | None = None) -> pystac.Item:
    """The MLM record of a model.

    Args:
        facts: What to state (:func:`~srgan.model_facts.model_facts`).
        card_href: Where its model card lies (an asset with role ``metadata``), if written.

    Returns:
        A STAC 1.1 Item with the MLM v1.4.0 and eo v1.1.0 extensions.
    """
    config, run = facts.config, facts.run
    properties: dict[str, Any] = {
        "description": (
            f"SRGAN ({facts.architecture}) super-resolving Sentinel-2 {', '.join(facts.bands)} "
            f"×{config.data.scale}, trained by s2-srgan"
        ),
        "created": facts.created.isoformat().replace("+00:00", "Z"),
        "s2sr:training": {
            "store": facts.store,
            "store_version": facts.store_version,
            "degradation": facts.degradation,
            "scenes": [asdict(s) for s in facts.scenes],
            "scenes_note": facts.scenes_note,
            "run": asdict(run),
            "checkpoint_sha256": facts.checkpoint_sha256,
            "weights": facts.weights,
        },
        "s2sr:validation": facts.metrics,
        "processing:software": {"s2-srgan": facts.software.removeprefix("s2-srgan ")},
    }
    item = pystac.Item(item_id(facts.name), None, None, facts.created, properties)
    MLMExtension.ext(item, add_if_missing=True).apply(
        name=facts.name,
        architecture=facts.architecture,
        tasks=[TaskType.SUPER_RESOLUTION],
        input=[_model_input(facts)],
        output=[_model_output(facts)],
        framework="pytorch",
        framework_version=facts.framework_version,
        total_parameters=facts.total_parameters,
        pretrained=run.warm_started_from is not None,
        pretrained_source=run.warm_started_from,
        batch_size_suggestion=config.data.batch_size,
        accelerator=_accelerator(run.hardware),
        accelerator_constrained=False,
        accelerator_summary=f"trained on {run.hardware}, precision {run.precision}",
        hyperparameters=Hyperparameters.create(
            scale=config.data.scale,
            generator=config.generator.model_dump(mode="json"),
            iterations=run.iterations,
            adv_weight=config.losses.adv_weight,
            ema_decay=config.ema.decay if config.ema.enabled else None,
        ),
    )
    model = pystac.Asset(
        facts.checkpoint,
        title=f"checkpoint ({facts.weights} weights used for inference)",
        media_type=CHECKPOINT_MEDIA_TYPE,
        roles=["mlm:model", "mlm:weights", "mlm:checkpoint"],
        extra_fields={"mlm:artifact_type": ARTIFACT_TYPE},
    )
    item.add_asset("model", model)
    EOExtension.ext(model, add_if_missing=True).bands = eo_bands(facts.bands)
    if card_href is not None:
        card = pystac.Asset(card_href, title="model card", media_type="text/markdown")
        card.roles = ["metadata"]
        item.add_asset("model-card", card)
    return item
