"""``s2-srgan --help`` and ``s2-srgan presets`` answer without loading the heavy libraries.

Their speed (``docs/benchmarks.md``) comes from the imports each command leaves out; this test
guards those imports, not a time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "pydantic", "rasterio", "zarr", "prefect")

PROBE = """
import contextlib, io, json, sys
heavy = json.loads(sys.argv.pop())
from srgan.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps({"out": out.getvalue(), "loaded": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize(
    ("argv", "expected"), [(["--help"], "usage: s2-srgan"), (["presets"], "cpu-tiny")]
)
def test_command_loads_no_heavy_library(argv: list[str], expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert expected in report["out"]
    assert report["loaded"] == []


def test_the_qa_options_help_lists_every_gate_field_with_its_default() -> None:
    """``--help`` reads the QA defaults from a pydantic-free table: it must match the gate."""
    from dataclasses import asdict

    from srgan.qa_defaults import DEFAULTS
    from srgan.qa_gate import QAGate

    assert asdict(DEFAULTS) == QAGate().model_dump()


def test_scene_super_resolution_starts_without_lightning() -> None:
    """The super-resolve path (CLI command, library function, checkpoint reader) loads neither
    Lightning nor the training code: its start-up to the first tile is what ``bench``
    measures (docs/benchmarks.md). Broken by hand: importing ``load_checkpoint`` from
    ``srgan.checkpointing`` in ``srgan.inference`` fails it."""
    probe = (
        "import json, sys\n"
        "import srgan.cli, srgan.super_resolve_scene, srgan.inference_tuning\n"
        "print(json.dumps([m for m in ('lightning', 'torchmetrics', 'srgan.module') "
        "if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
