"""The README's Python quickstart runs as written, and the README stays a first page.

The quickstart is the first ``python`` code block under "Quickstart in Python"; it is executed
as is in an empty folder (so its relative ``quickstart/`` paths land there), on the real
BigEarthNet sample scenes. A broken call, a renamed import or a wrong claim in its comments that
the block checks (the output size) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rasterio
import torch

from srgan.train import FitResult

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def quickstart_code() -> str:
    """The first ``python`` block after the "Quickstart in Python" heading."""
    text = README.read_text()
    section = text.split("## Quickstart in Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under 'Quickstart in Python'"
    return match.group(1)


def test_readme_is_a_first_page() -> None:
    """At most 200 lines, the two commands, and a link to every page of the manual."""
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"


def test_readme_links_resolve() -> None:
    """Every relative link of the README and the manual names an existing file."""
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_quickstart_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bigearthnet_dirs: list[Path]
) -> None:
    """The quickstart tiles, trains 20 iterations and writes a 480 × 480 COG (~10 s on 2 cores)."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    namespace: dict[str, object] = {}
    exec(compile(quickstart_code(), str(README), "exec"), namespace)
    result = namespace["result"]
    assert isinstance(result, FitResult) and result.iteration == 20
    with rasterio.open(tmp_path / "quickstart" / "sr.tif") as cog:
        assert (cog.width, cog.height, cog.count) == (480, 480, 4)
        assert cog.res == (2.5, 2.5)
