"""Per-family configs: each family's config holds its constructor's arguments and no others; the
names a config accepts are those of the registries; flat configs of 0.1.0 still load."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_args

import pytest
import torch

from datasets.normalise import NORMALISATIONS, NormalisationName
from srgan.config import (
    METRIC_HIGHER_IS_BETTER,
    ConfigError,
    ValMetric,
    load_config,
    validate_config,
)
from srgan.evaluate import load_module
from srgan.inference import load_inference_model
from srgan.losses.adversarial import _LOSSES, AdversarialKind
from srgan.losses.perceptual import LAYER_INDEX, PerceptualLayer
from srgan.models import (
    BLOCKS,
    DISCRIMINATORS,
    GENERATORS,
    PatchGANDiscriminatorConfig,
    RRDBNetConfig,
    SRResNetConfig,
)
from srgan.models.blocks import BlockName
from srgan.models.family import Family, FamilyConfig, config_union, family_name

FLAT_CHECKPOINT = Path(__file__).parents[1] / "data" / "flat_config" / "last.ckpt"
FAMILIES = [*GENERATORS.items(), *DISCRIMINATORS.items()]
#: Constructor arguments the data decides, never the config.
FROM_DATA = {"self", "in_bands", "scale", "out_bands"}


@pytest.mark.parametrize(
    ("literal", "registry"),
    [
        (BlockName, BLOCKS),
        (AdversarialKind, _LOSSES),
        (NormalisationName, NORMALISATIONS),
        (PerceptualLayer, LAYER_INDEX),
        (ValMetric, METRIC_HIGHER_IS_BETTER),
    ],
)
def test_config_names_are_the_registry_names(literal: Any, registry: dict[str, Any]) -> None:
    assert set(get_args(literal)) == set(registry)


@pytest.mark.parametrize(("name", "family"), FAMILIES)
def test_family_config_holds_its_constructor_arguments(name: str, family: Family[Any]) -> None:
    """Same names and same defaults, so the two cannot drift apart."""
    params = {
        p.name: p.default
        for p in inspect.signature(family.network.__init__).parameters.values()
        if p.name not in FROM_DATA
    }
    config = family.config()
    assert family_name(family.config) == name
    assert config.constructor_kwargs() == params


def test_registry_and_config_name_must_agree() -> None:
    with pytest.raises(ValueError, match=r"'srresnet'.*use the same name"):
        config_union({"resnet": GENERATORS["srresnet"], **DISCRIMINATORS})


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"generator": {"name": "srresnet", "growth": 8}}, "generator.growth"),
        ({"generator": {"name": "rrdbnet", "block": "rcab"}}, "generator.block"),
        ({"discriminator": {"name": "patchgan", "fc_features": 8}}, "discriminator.fc_features"),
        ({"discriminator": {"name": "esrgan", "n_layers": 2}}, "discriminator.n_layers"),
    ],
)
def test_a_key_of_another_family_is_refused(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown key '{key}'; valid keys here: name, "):
        load_config("cpu-tiny", section)


def test_switching_family_starts_from_its_defaults() -> None:
    """The preset's ``block: rcab`` belongs to srresnet; the rrdbnet section does not take it."""
    cfg = load_config("s2-10m-rgbn-x4", {"generator": {"name": "rrdbnet", "growth": 16}})
    assert cfg.generator == RRDBNetConfig(growth=16)
    kept = load_config("s2-10m-rgbn-x4", {"generator": {"name": "srresnet", "n_blocks": 2}})
    assert kept.generator == SRResNetConfig(block="rcab", channels=64, n_blocks=2)


def test_a_section_without_name_is_the_default_family() -> None:
    yaml_like = {"generator": {"channels": 8}, "schedule": {"max_iterations": 1}}
    assert validate_config(yaml_like).generator == SRResNetConfig(channels=8)


def test_flat_checkpoint_of_0_1_0_loads_for_inference() -> None:
    """Written by 0.1.0 (``tests/data/flat_config/data.py``): the generator section carries
    ``growth`` and ``noise_dim``, the patchgan section ``n_blocks``, ``pool_size`` and
    ``fc_features``; all are dropped and the weights fit exactly."""
    recorded = torch.load(FLAT_CHECKPOINT, weights_only=True)["hyper_parameters"]["config"]
    assert {"growth", "noise_dim"} <= recorded["generator"].keys()
    model = load_inference_model(FLAT_CHECKPOINT, device="cpu")
    assert model.config.generator == SRResNetConfig(
        block="res", channels=4, n_blocks=1, large_kernel=3
    )
    sr = model.predict(torch.rand(1, 4, 8, 8))
    assert sr.shape == (1, 4, 32, 32) and bool(torch.isfinite(sr).all())


def test_flat_checkpoint_of_0_1_0_loads_as_a_module() -> None:
    """Generator, discriminator and EMA weights load strictly into the migrated families."""
    module = load_module(str(FLAT_CHECKPOINT))
    assert module.config.discriminator == PatchGANDiscriminatorConfig(base_channels=4, n_layers=2)
    assert module.iteration == 6


def test_every_family_config_is_strict() -> None:
    for _, family in FAMILIES:
        assert issubclass(family.config, FamilyConfig)
        with pytest.raises(ValueError, match="extra"):
            family.config(unknown=1)
