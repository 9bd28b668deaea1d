"""``s2-srgan``: local work without Prefect (tile, train, super-resolve, tune, presets).

One function per command. Each imports what it needs (torch, Lightning, the data library)
inside itself, so ``--help`` and ``presets`` answer without loading them. A new command is a
function and a subparser in :func:`build_parser`, or, when it has many options, a module of its
own with an ``add_parser`` (as ``tile``, in :mod:`srgan.cli_tile`).

Example::

    s2-srgan presets
    s2-srgan train --config cpu-tiny --data .s2sr/patches/demo.zarr --run-dir runs/try1 \\
        --set schedule.max_iterations=200
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from srgan.cli_tile import add_parser as add_tile_parser
from srgan.cli_tune import add_parser as add_tune_parser


def parse_set(assignments: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into nested overrides ``{"a": {"b": 1}, "c": ["x", "y"]}``.

    Values are parsed as YAML scalars/lists, so numbers, booleans and lists keep their types.
    """
    import yaml

    from srgan.config import ConfigError

    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--set expects KEY=VALUE (e.g. schedule.max_iterations=100), got {item!r}"
            )
        node = overrides
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return overrides


def _train(args: argparse.Namespace) -> int:
    from datasets.errors import S2SRDataError
    from srgan.config import load_config
    from srgan.data import datamodule_for
    from srgan.train import fit

    overrides = parse_set(args.set)
    overrides.setdefault("data", {})["store"] = args.data
    cfg = load_config(args.config, overrides)
    try:
        datamodule = datamodule_for(cfg.data)
    except S2SRDataError as err:
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2
    result = fit(
        cfg,
        datamodule,
        args.run_dir,
        resume=not args.fresh,
        init_from=args.init_from,
        progress_bar=sys.stderr.isatty(),
    )
    text = json.dumps(asdict(result), indent=2)
    print(text)
    # under torchrun every rank trains; rank 0 holds the result the caller reads back
    if args.result_json and os.environ.get("RANK", "0") == "0":
        out = Path(args.result_json)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return 0


def _presets(args: argparse.Namespace) -> int:
    from srgan.presets import preset_names

    for name in preset_names():
        print(name)
    return 0


def _super_resolve(args: argparse.Namespace) -> int:
    from datasets.errors import S2SRDataError
    from srgan.checkpoint_io import CheckpointError
    from srgan.super_resolve_scene import super_resolve_scene

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
            overwrite=args.overwrite,
        )
    except (S2SRDataError, CheckpointError) as err:
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``s2-srgan`` argument parser."""
    parser = argparse.ArgumentParser(prog="s2-srgan", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an SRGAN on a patch store")
    train.add_argument("--config", default="cpu-tiny", help="preset name or YAML file")
    train.add_argument("--data", required=True, help="patch store URI (local dir or s3://)")
    train.add_argument("--run-dir", default=str(Path(".s2sr") / "runs" / "local"))
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    train.add_argument("--init-from", default=None, help="warm-start from a checkpoint")
    train.add_argument("--fresh", action="store_true", help="ignore checkpoints in --run-dir")
    train.add_argument(
        "--result-json", default=None, help="also write the result (rank 0's) to this file"
    )
    train.set_defaults(func=_train)

    add_tile_parser(sub, parse_set)
    add_tune_parser(sub, parse_set)

    presets = sub.add_parser("presets", help="list the shipped config presets")
    presets.set_defaults(func=_presets)

    sr = sub.add_parser("super-resolve", help="super-resolve a scene into a COG")
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
    sr.set_defaults(func=_super_resolve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors the user can fix are printed as one line, exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as err:  # a ConfigError is a ValueError
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
