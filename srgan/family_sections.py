"""The ``generator`` and ``discriminator`` sections of the training config.

Each is a pydantic union of the registered families' configs, discriminated by ``name`` and
built from the registries in :mod:`srgan.models`, so a family is configurable as soon as it is
registered. Flat sections recorded by s2-srgan 0.1.0 (one class for every family) are migrated
on validation; an override that switches a section's family starts that family from its own
defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from srgan.models import (
    DISCRIMINATORS,
    GENERATORS,
    DiscriminatorFamilyConfig,
    Family,
    GeneratorFamilyConfig,
    SRGANDiscriminatorConfig,
    SRResNetConfig,
)
from srgan.models.family import config_union, family_name

if TYPE_CHECKING:  # mypy sees the families' common base; pydantic validates the union
    GeneratorConfig: TypeAlias = GeneratorFamilyConfig
    DiscriminatorConfig: TypeAlias = DiscriminatorFamilyConfig
else:
    #: One config class per registered generator family, chosen by ``name``.
    GeneratorConfig = config_union(GENERATORS)
    #: One config class per registered discriminator family, chosen by ``name``.
    DiscriminatorConfig = config_union(DISCRIMINATORS)

#: Every field of the flat generator and discriminator classes of s2-srgan 0.1.0, as every
#: checkpoint of that release recorded them (``joint_real_fake`` came later in 0.1.0).
FLAT_FAMILY_KEYS: dict[str, frozenset[str]] = {
    "generator": frozenset(
        {"name", "block", "channels", "n_blocks", "large_kernel", "small_kernel", "res_scale"}
        | {"growth", "noise_dim", "bicubic_skip"}
    ),
    "discriminator": frozenset(
        {"name", "base_channels", "n_blocks", "n_layers", "pool_size", "fc_features"}
        | {"spectral_norm"}
    ),
}
FAMILY_REGISTRIES: dict[str, Mapping[str, Family[Any]]] = {
    "generator": GENERATORS,
    "discriminator": DISCRIMINATORS,
}
DEFAULT_FAMILIES = {
    "generator": family_name(SRResNetConfig),
    "discriminator": family_name(SRGANDiscriminatorConfig),
}


def migrate_flat_families(data: Any) -> Any:
    """Name the default family in a section without ``name``, and turn the flat
    ``generator``/``discriminator`` sections of 0.1.0 into per-family ones.

    Up to 0.1.0 one class held the fields of every family and a config recorded all of them,
    those its family ignored included. A section holding every one of those fields is such a
    record: the fields its family does not take (and that 0.1.0 ignored) are dropped. A section
    with only some of them is left alone, so a key set on the wrong family is still refused.
    """
    if not isinstance(data, Mapping):
        return data
    migrated = dict(data)
    for section, flat_keys in FLAT_FAMILY_KEYS.items():
        value = migrated.get(section)
        if isinstance(value, Mapping) and "name" not in value:
            value = migrated[section] = {"name": DEFAULT_FAMILIES[section], **value}
        if not (isinstance(value, Mapping) and flat_keys <= value.keys()):
            continue
        family = FAMILY_REGISTRIES[section].get(str(value["name"]))
        if family is not None:
            fields = family.config.model_fields
            migrated[section] = {k: v for k, v in value.items() if k in fields}
    return migrated


def without_family_tag(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], type | None]:
    """``loc`` without the family name pydantic inserts after ``generator``/``discriminator``,
    and that family's config class (``None`` outside those sections)."""
    if len(loc) >= 2 and loc[0] in FAMILY_REGISTRIES:
        family = FAMILY_REGISTRIES[str(loc[0])].get(str(loc[1]))
        if family is not None:
            return (loc[0], *loc[2:]), family.config
    return loc, None


def without_switched_families(
    base: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """``base`` without the ``generator``/``discriminator`` sections whose family ``overrides``
    switches: the new family starts from its own defaults, since the old one's keys may not
    exist in it."""
    kept = dict(base)
    for section, default in DEFAULT_FAMILIES.items():
        new, old = overrides.get(section), base.get(section)
        switched = isinstance(new, Mapping) and "name" in new and isinstance(old, Mapping)
        if switched and new["name"] != old.get("name", default):  # type: ignore[index,union-attr]
            del kept[section]
    return kept
