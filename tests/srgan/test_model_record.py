"""The model card and the STAC MLM record of a trained checkpoint.

A tiny SRGAN is trained on a patch store tiled from two real products (a 2023 L2A with the
-1000 DN offset and a 2020 L1C without one), so the training data section names both scenes
with their harmonisation. The MLM record is validated offline against the MLM v1.4.0 schema
(and the eo, raster, classification and processing schemas it refers to, all committed under
``tests/data/stac-schemas``). Broken by hand once each: ``value_scaling`` left as the single
object pystac-ext-mlm writes (both schema validations fail); the parameter count taken from
the discriminator (the facts test fails).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch
from stac_schemas import validate_item
from toy_data import TINY_RUN

from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene
from datasets.tiling_params import TilingParams
from srgan.build import generator_from_config
from srgan.config import deep_merge, load_config
from srgan.data import pinned_datamodule
from srgan.inference import load_inference_model
from srgan.mlm_record import mlm_item, value_scaling
from srgan.model_card import model_card
from srgan.model_facts import ModelFacts, TrainingRun, model_facts
from srgan.train import fit

L2A = "S2B_MSIL2A_20230615T155619_N0510_R054_T18SVG_20230615T180112"
L1C = "S2B_MSIL1C_20200101T155619_N0208_R054_T18SVG_20200101T174012"


@pytest.fixture(scope="module")
def trained(s2_products, tmp_path_factory):
    """(checkpoint, FitResult) of a tiny SRGAN trained on the two real products."""
    root = tmp_path_factory.mktemp("model-record")
    store = str(root / "patches.zarr")
    params = TilingParams(
        patch_size=64, scale=4, split=SplitPolicy(mode="block", block_size=128, val_fraction=0.3)
    )
    tile_scene(str(s2_products.l2a_2023_zip), store, params)
    tile_scene(str(s2_products.pre2022_l1c), store, params)
    torch.set_num_threads(1)
    overrides = {
        "data": {"store": store},
        "schedule": {"max_iterations": 4},
        "validation": {"every_n_iterations": 2},
        "trainer": {"accelerator": "cpu"},
    }
    config = load_config("cpu-tiny", deep_merge(TINY_RUN, overrides))
    config, datamodule = pinned_datamodule(config)
    result = fit(config, datamodule, root / "runs" / "r1")
    return result


@pytest.fixture(scope="module")
def facts(trained) -> ModelFacts:
    run = TrainingRun(
        run_key="r1",
        iterations=trained.iteration,
        hardware=trained.device,
        precision=trained.precision,
        seconds=trained.seconds,
    )
    return model_facts(trained.checkpoint, trained.metrics, run)


def test_facts_name_the_data_the_size_and_the_hardware(facts, trained):
    assert facts.bands == ["B02", "B03", "B04", "B08"] and facts.config.data.scale == 4
    expected = sum(p.numel() for p in generator_from_config(facts.config).parameters())
    assert facts.total_parameters == expected and expected > 1000
    assert facts.store_version == trained.store_version and facts.store
    scenes = {s.scene: s for s in facts.scenes}
    assert set(scenes) == {L2A, L1C}
    assert (scenes[L2A].harmonisation, scenes[L2A].offset) == ("product-metadata", "-1000")
    assert scenes[L1C].offset == "0"
    # the weights inference will use, by the same rule
    assert facts.weights == load_inference_model(facts.checkpoint, device="cpu").weights
    assert facts.run.hardware.startswith("cpu")


def test_model_card_states_every_required_fact(facts):
    card = model_card(facts, mlm_href="mlm-item.json")
    assert card.startswith("# Model card: s2-srgan r1")
    assert "`B02`, `B03`, `B04`, `B08`" in card
    assert "`normalise_10k`: `x / 10000`" in card and "×4" in card
    assert f"**{facts.total_parameters:,} parameters**" in card
    assert f"version `{facts.store_version}`" in card
    l2a_row = next(line for line in card.splitlines() if line.startswith(f"| {L2A} |"))
    assert "| product-metadata | 05.10 | -1000 |" in l2a_row
    for name in ("psnr", "ssim", "hallucination"):
        row = next(line for line in card.splitlines() if line.startswith(f"| {name} |"))
        assert len(row.split("|")) == 6, row  # model, bicubic and gain
    assert "trained on cpu" in card and facts.checkpoint_sha256 in card
    assert "STAC MLM record: `mlm-item.json`" in card


def test_mlm_record_validates_against_its_schema(facts):
    item = mlm_item(facts, card_href="model-card.md").to_dict()
    validate_item(item)
    assert "https://stac-extensions.github.io/mlm/v1.4.0/schema.json" in item["stac_extensions"]
    props = item["properties"]
    assert props["mlm:tasks"] == ["super-resolution"] and props["mlm:framework"] == "pytorch"
    assert props["mlm:total_parameters"] == facts.total_parameters
    (model_input,) = props["mlm:input"]
    assert model_input["bands"] == ["B02", "B03", "B04", "B08"]
    assert model_input["value_scaling"] == [{"type": "min-max", "minimum": 0, "maximum": 10000}]
    assert props["mlm:accelerator"] == "amd64"
    training = props["s2sr:training"]
    assert training["store_version"] == facts.store_version
    assert {s["scene"] for s in training["scenes"]} == {L2A, L1C}
    assert props["s2sr:validation"]["val_metrics/bicubic_psnr"] > 0
    model = item["assets"]["model"]
    assert model["href"] == facts.checkpoint and "mlm:model" in model["roles"]
    assert [b["name"] for b in model["eo:bands"]] == ["B02", "B03", "B04", "B08"]
    assert item["assets"]["model-card"]["href"] == "model-card.md"


def test_a_broken_record_fails_the_schema(facts):
    item = mlm_item(facts).to_dict()
    item["properties"]["mlm:input"][0]["value_scaling"] = {"type": "min-max", "minimum": 0}
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)
    item = mlm_item(facts).to_dict()
    del item["assets"]["model"]["mlm:artifact_type"]
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)


@pytest.mark.parametrize(
    ("normalisation", "expected"),
    [
        ("normalise_10k_signed", [{"type": "min-max", "minimum": 5000, "maximum": 10000}]),
        ("identity", None),
    ],
)
def test_value_scaling_maps_reflectance_as_the_normalisation(normalisation, expected):
    assert value_scaling(normalisation) == expected
    # the formula checked on numbers: (x - min) / (max - min)
    if expected:
        low, high = expected[0]["minimum"], expected[0]["maximum"]
        assert (10000 - low) / (high - low) == 1.0 and (0 - low) / (high - low) == -1.0


def test_a_model_without_a_store_says_why_it_lists_no_scene(tiny_checkpoint):
    run = TrainingRun("tiny", 10, "cpu (1 threads)", "32-true", 1.0)
    facts = model_facts(tiny_checkpoint, {}, run)
    assert facts.scenes == [] and "in-memory" in (facts.scenes_note or "")
    card = model_card(facts)
    assert "in-memory" in card and "_no validation metrics recorded_" in card
    validate_item(json.loads(json.dumps(mlm_item(facts).to_dict())))
    assert Path(tiny_checkpoint).is_file()
