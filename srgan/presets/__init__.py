"""The config presets shipped with s2-srgan: one YAML file per preset in this folder.

Kept free of torch and pydantic so that listing them (``s2-srgan presets``) is instant.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def preset_names() -> list[str]:
    """Names of the presets shipped in the package."""
    return sorted(
        p.name.removesuffix(".yaml") for p in _folder().iterdir() if p.name.endswith(".yaml")
    )


def preset_file(name: str) -> Traversable | None:
    """The YAML file of preset ``name``, or ``None`` when no preset has that name."""
    path = _folder() / f"{name}.yaml"
    return path if path.is_file() else None


def _folder() -> Traversable:
    return resources.files(__name__)
