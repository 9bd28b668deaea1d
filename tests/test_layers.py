"""Imports point one way: ``datasets`` → ``srgan`` → ``tasks`` → ``flows``.

Every import statement of the four packages is read from source (those inside functions and
``TYPE_CHECKING`` blocks included, since a lazy import is still a dependency), and each must name
a package of its own layer or a lower one. ``datasets`` and ``srgan`` never import Prefect, so
they stay usable and testable without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("datasets", "srgan", "tasks", "flows")
WITHOUT_PREFECT = ("datasets", "srgan")
PREFECT_PACKAGES = ("prefect", "prefect_dask")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def wrong_way_imports(package: str, source: str) -> list[str]:
    """Imports in a module of ``package`` that point to a higher layer (or to Prefect from
    the two libraries)."""
    rank = LAYERS.index(package)
    wrong = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if top in LAYERS and LAYERS.index(top) > rank:
            wrong.append(f"line {line}: {module} (layer {top} is above {package})")
        if package in WITHOUT_PREFECT and top in PREFECT_PACKAGES:
            wrong.append(f"line {line}: {module} ({package} must not import Prefect)")
    return wrong


def _modules() -> list[Path]:
    return sorted(path for layer in LAYERS for path in (ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    assert wrong_way_imports(package, path.read_text()) == []


def test_check_sees_imports_inside_functions() -> None:
    source = "import numpy\n\ndef f():\n    from tasks.storage import join\n    import prefect\n"
    assert wrong_way_imports("srgan", source) == [
        "line 4: tasks.storage (layer tasks is above srgan)",
        "line 5: prefect (srgan must not import Prefect)",
    ]
    assert wrong_way_imports("flows", source) == []


def test_every_layer_is_scanned() -> None:
    scanned = {path.relative_to(ROOT).parts[0] for path in _modules()}
    assert scanned == set(LAYERS)
