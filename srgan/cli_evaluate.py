"""``s2-srgan evaluate``: score a checkpoint on a patch store with a reference.

Prints :class:`~srgan.evaluate_store.StoreEvaluation` as JSON: PSNR, SSIM, SAM, ERGAS and L1 of
the checkpoint and of bicubic upsampling, and the opensr-test improvement / omission /
hallucination shares.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_evaluate(sub: Any) -> None:
    """Register the ``evaluate`` subcommand."""
    ev = sub.add_parser("evaluate", help="score a checkpoint on a patch store (with a reference)")
    ev.add_argument("--checkpoint", required=True, help="checkpoint path or URL")
    ev.add_argument("--data", required=True, help="patch store URI (local dir or s3://)")
    ev.add_argument("--split", default="val", choices=["val", "train"])
    ev.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    ev.add_argument("--batch-size", type=int, default=16, help="pairs per generator call")
    ev.add_argument("--version", default=None, help="store version (default: the latest)")
    ev.add_argument("--device", default=None, help="torch device (default: a GPU if any)")
    ev.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    from datasets.errors import S2SRDataError
    from srgan.checkpoint_io import CheckpointError
    from srgan.evaluate_store import evaluate_store

    try:
        report = evaluate_store(
            args.checkpoint,
            args.data,
            split=args.split,
            limit=args.limit,
            batch_size=args.batch_size,
            version=args.version,
            device=args.device,
        )
    except (S2SRDataError, CheckpointError) as err:
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2))
    return 0
