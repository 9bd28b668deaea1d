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

from srgan.cli_evaluate import add_evaluate
from srgan.cli_super_resolve import add_super_resolve
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
    from srgan.config import load_config
    from srgan.data import pinned_datamodule
    from srgan.train import fit

    overrides = parse_set(args.set)
    overrides.setdefault("data", {})["store"] = args.data
    # errors the user can fix (a missing store, an empty split) are one line: see main()
    cfg, datamodule = pinned_datamodule(load_config(args.config, overrides))
    result = fit(
        cfg,
        datamodule,
        args.run_dir,
        resume=not args.fresh,
        init_from=args.init_from,
        progress_bar=sys.stderr.isatty(),
        owner=args.run_owner,
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
    train.add_argument(
        "--run-owner",
        default=None,
        help="who trains into --run-dir (default: this process); a later run with the same "
        "owner takes the run folder over at once, another one is refused while it trains",
    )
    train.set_defaults(func=_train)

    add_tile_parser(sub, parse_set)
    add_tune_parser(sub, parse_set)

    presets = sub.add_parser("presets", help="list the shipped config presets")
    presets.set_defaults(func=_presets)

    add_super_resolve(sub)
    add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; errors the user can fix are printed as one line, exit status 2 (the
    traceback goes to the log at DEBUG level)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as err:
        if not _is_user_error(err):
            raise
        logging.getLogger(__name__).debug("s2-srgan %s failed", args.command, exc_info=True)
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    """Whether ``err`` is one the user can fix (imported only once something failed, so that
    light commands never load torch)."""
    from datasets.errors import S2SRDataError
    from srgan.checkpointing import CheckpointError

    # a ConfigError is a ValueError
    return isinstance(err, FileNotFoundError | ValueError | S2SRDataError | CheckpointError)


if __name__ == "__main__":
    raise SystemExit(main())
