"""``s2-srgan``: local work without Prefect (train, super-resolve, presets).

This is the application entry point. It joins the model library to
the data library (``datasets``); it imports that library only inside the commands that need it.

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
from pathlib import Path
from typing import Any

import yaml

from srgan.cli_evaluate import add_evaluate
from srgan.cli_super_resolve import add_super_resolve
from srgan.config import ConfigError, load_config, preset_names


def parse_set(assignments: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into nested overrides ``{"a": {"b": 1}, "c": ["x", "y"]}``.

    Values are parsed as YAML scalars/lists, so numbers, booleans and lists keep their types.
    """
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
    from srgan.data import datamodule_for
    from srgan.train import fit

    overrides = parse_set(args.set)
    overrides.setdefault("data", {})["store"] = args.data
    cfg = load_config(args.config, overrides)
    datamodule = datamodule_for(cfg.data)
    result = fit(
        cfg,
        datamodule,
        args.run_dir,
        resume=not args.fresh,
        init_from=args.init_from,
        progress_bar=sys.stderr.isatty(),
    )
    text = json.dumps(result.__dict__, indent=2, default=str)
    print(text)
    # under torchrun every rank trains; rank 0 holds the result the caller reads back
    if args.result_json and os.environ.get("RANK", "0") == "0":
        out = Path(args.result_json)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return 0


def _presets(args: argparse.Namespace) -> int:
    for name in preset_names():
        print(name)
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

    presets = sub.add_parser("presets", help="list the shipped config presets")
    presets.set_defaults(func=_presets)

    add_super_resolve(sub)
    add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors the user can fix are printed as one line, exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
