"""``s2-srgan super-resolve``: a scene in, a COG with its QA sidecar and STAC Item out.

Prints a progress bar (tiles) on stderr while it runs and the result (paths, timing split, QA
summary) as JSON on stdout. Exit status: 0 done (QA passed, or broken with ``--qa-on-fail
warn``), 2 an error the user can fix (one line on stderr), 3 the output broke the QA gate
(files kept; the reasons on stderr).

The QA options mirror :class:`~srgan.qa_gate.QAGate` field by field (``--qa-<field>``), so
their ranges live in that one model and their defaults in :mod:`srgan.qa_defaults` (which
``--help`` reads without loading pydantic).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from srgan.qa_defaults import DEFAULTS, GateDefaults

if TYPE_CHECKING:
    from srgan.qa_gate import QAGate

#: Exit status of a run whose output broke the QA gate (with ``on_fail="fail"``).
EXIT_QA_FAILED = 3


def add_qa_options(parser: argparse.ArgumentParser) -> None:
    """``--qa-<field>`` for every :class:`QAGate` field (default: the model's), from the
    pydantic-free defaults, so ``s2-srgan --help`` never imports pydantic."""
    group = parser.add_argument_group("QA gate (docs/trust.md)")
    for field in fields(GateDefaults):
        group.add_argument(
            f"--qa-{field.name.replace('_', '-')}",
            dest=f"qa_{field.name}",
            default=None,
            metavar="VALUE",
            help=f"default {getattr(DEFAULTS, field.name)}",
        )


def qa_gate(args: argparse.Namespace) -> QAGate:
    """The :class:`QAGate` of the ``--qa-*`` options.

    Raises:
        ValueError: A value out of range or of the wrong type; the message names the option.
    """
    from pydantic import ValidationError

    from srgan.qa_gate import QAGate

    given = {n: getattr(args, f"qa_{n}") for n in QAGate.model_fields}
    try:
        return QAGate(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as err:
        problems = "; ".join(
            f"--qa-{str(e['loc'][0]).replace('_', '-')} {e['msg'].lower()} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ValueError(problems) from None


def add_super_resolve(sub: Any) -> None:
    """Register the ``super-resolve`` subcommand."""
    sr = sub.add_parser("super-resolve", help="super-resolve a scene into a COG (with QA)")
    sr.add_argument("scene", help="band folder, .SAFE product or multi-band raster (or s3://)")
    sr.add_argument("--checkpoint", required=True, help="checkpoint path or URL")
    sr.add_argument("--out", required=True, help="output .tif path or s3:// URI")
    sr.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    sr.add_argument(
        "--tile-size", type=int, help="LR tile edge (default: measured by tune, else 128)"
    )
    sr.add_argument("--overlap", type=int, default=16, help="LR overlap of neighbouring tiles")
    sr.add_argument(
        "--batch-size", type=int, help="tiles per generator call (default: measured, else 8)"
    )
    sr.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="auto: bfloat16 on a GPU, on the CPU what tune measured faster, else float32",
    )
    sr.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: a GPU if any)"
    )
    sr.add_argument(
        "--no-ema", action="store_true", help="use the raw generator, not its EMA weights"
    )
    sr.add_argument(
        "--dtype",
        choices=["uint16", "float32"],
        default="uint16",
        help="uint16 reflectance x10000 (default) or float32 reflectance",
    )
    sr.add_argument(
        "--compress",
        choices=["zstd", "deflate", "lzw"],
        default="zstd",
        help="COG compression: zstd (default, fastest) or deflate for readers without zstd",
    )
    sr.add_argument("--offset", type=float, help="harmonisation offset (DN) of bare files")
    sr.add_argument("--quantification", type=float, help="DNs per unit reflectance")
    sr.add_argument(
        "--reapply-offset",
        action="store_true",
        help="write the product's digital numbers (e.g. +1000 since baseline 04.00), not "
        "harmonised reflectance x10000",
    )
    sr.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_qa_options(sr)
    sr.set_defaults(func=run_super_resolve)


def run_super_resolve(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    from tqdm import tqdm

    from datasets.errors import HarmonisationError, S2SRDataError
    from datasets.harmonise import HarmonisationParam
    from srgan.checkpoint_io import CheckpointError
    from srgan.super_resolve_scene import super_resolve_scene

    gate = qa_gate(args)  # before any work: a bad threshold costs nothing
    given = {"offset": args.offset, "quantification": args.quantification}
    harmonisation = (
        HarmonisationParam(**{k: v for k, v in given.items() if v is not None})
        if any(v is not None for v in given.values())
        else None
    )
    bar = tqdm(
        total=0, unit="tile", desc="super-resolve", disable=args.no_progress, file=sys.stderr
    )

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = super_resolve_scene(
            args.scene,
            args.checkpoint,
            args.out,
            tile_size=args.tile_size,
            overlap=args.overlap,
            batch_size=args.batch_size,
            use_ema=not args.no_ema,
            device=args.device,
            precision=args.precision,
            dtype=args.dtype,
            compress=args.compress,
            overwrite=args.overwrite,
            progress=progress,
            qa=gate,
            harmonisation=harmonisation,
            reapply_offset=args.reapply_offset,
        )
    except (S2SRDataError, CheckpointError) as err:
        hint = ""
        if isinstance(err, HarmonisationError):
            hint = " On the command line: --offset -1000 (or 0), --quantification N."
        print(f"s2-srgan: error: {err}{hint}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(json.dumps(result.as_dict(), indent=2, default=str))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"s2-srgan: {timing}", file=sys.stderr)
    if result.passed:
        return 0
    print(f"s2-srgan: QA gate broken: {' '.join(result.qa.reasons)}", file=sys.stderr)
    return EXIT_QA_FAILED if gate.on_fail == "fail" else 0
