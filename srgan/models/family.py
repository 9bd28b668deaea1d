"""Network families: a network class with the config class that describes it, keyed by name.

A family's config holds exactly the keyword arguments of its network's constructor (those the
training config decides: never the band count or the scale, which come from the data), so a key
another family uses cannot be set on it. The training config's ``generator`` and
``discriminator`` sections are pydantic unions of the registered families' configs,
discriminated by ``name``; :func:`config_union` builds them from a registry, so registering a
family is all it takes to make it configurable.

Example::

    class TinyConfig(GeneratorFamilyConfig):
        name: Literal["tiny"] = "tiny"
        channels: int = Field(8, ge=1)

    GENERATORS = {..., "tiny": Family(TinyNet, TinyConfig)}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

N = TypeVar("N", bound=nn.Module)


class FamilyConfig(BaseModel):
    """Base of every family config: its ``name`` (a one-value ``Literal``) and fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str

    #: Fields that configure training around the network, not its constructor.
    training_fields: ClassVar[frozenset[str]] = frozenset({"name"})

    def constructor_kwargs(self) -> dict[str, Any]:
        """The fields the network's constructor takes, by name."""
        return self.model_dump(exclude=set(self.training_fields))


class GeneratorFamilyConfig(FamilyConfig):
    """Base of generator configs; a generator also takes ``in_bands`` and ``scale``."""

    training_fields: ClassVar[frozenset[str]] = frozenset({"name", "bicubic_skip"})

    #: Predict the residual over bicubic upsampling instead of the image itself.
    bicubic_skip: bool = True


class DiscriminatorFamilyConfig(FamilyConfig):
    """Base of discriminator configs; a discriminator also takes ``in_bands``."""

    training_fields: ClassVar[frozenset[str]] = frozenset({"name", "joint_real_fake"})

    # One D forward on cat(real, fake) instead of two: larger, faster kernels, but batch norm
    # then normalises real and fake with shared batch statistics, so D computes something else.
    joint_real_fake: bool = False


@dataclass(frozen=True)
class Family(Generic[N]):
    """A registry entry: the network class and the config class whose fields it takes."""

    network: type[N]
    config: type[FamilyConfig]


def family_name(config: type[FamilyConfig]) -> str:
    """The name a family config is registered under (the default of its ``name`` field)."""
    default = config.model_fields["name"].default
    if not isinstance(default, str):
        raise TypeError(f"{config.__name__}.name needs a default: its Literal family name")
    return default


def config_union(registry: Mapping[str, Family[Any]]) -> Any:
    """The pydantic type of a config section: one of the registry's configs, by ``name``.

    Raises:
        ValueError: a registry key differs from its config's ``name`` (the two must agree,
            since the config's ``name`` is how a YAML file selects the family).
    """
    for key, family in registry.items():
        if family_name(family.config) != key:
            raise ValueError(
                f"family {key!r} is registered with {family.config.__name__}, whose name is "
                f"{family_name(family.config)!r}; use the same name in both"
            )
    members = tuple(family.config for family in registry.values())
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007
