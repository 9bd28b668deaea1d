"""``s2-srgan tune``: measure the speed settings of training and inference on this machine.

With ``--config`` it runs the training step's short timed trial (:mod:`srgan.step_trial`);
with ``--checkpoint`` it times the generator's tile sizes, batch sizes and precisions
(:mod:`srgan.inference_tuning`). Either way the winners go into the tuning cache
(``$S2SR_TUNING`` or ``~/.cache/s2-srgan/tuning.json``), where every later fit of the same
config, or super-resolution with the same generator, on this machine finds them; a value given
explicitly (config key, command-line option) still wins.

Example::

    s2-srgan tune --config s2-10m-rgbn-x4
    s2-srgan tune --checkpoint runs/try1/checkpoints/best.ckpt --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def add_parser(sub: Any, parse_set: Callable[[list[str]], dict[str, Any]]) -> None:
    """Add the ``tune`` command to the CLI's sub-parsers."""
    tune = sub.add_parser("tune", help="measure training/inference speed settings on this machine")
    tune.add_argument("--config", help="preset or YAML: time the training step of this config")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    tune.add_argument("--checkpoint", help="time scene inference with this generator")
    tune.add_argument("--device", default=None, help="inference device (default: a GPU if any)")
    tune.add_argument("--overlap", type=int, default=16, help="LR overlap the runs will use")
    tune.add_argument(
        "--compile", action="store_true", help="also try torch.compile on a CPU (slow to compile)"
    )
    tune.add_argument("--json", action="store_true", help="print the full result as JSON")
    tune.set_defaults(func=lambda args: run(args, parse_set))


def run(args: argparse.Namespace, parse_set: Callable[[list[str]], dict[str, Any]]) -> int:
    """Run the requested trials; print what was chosen."""
    if not args.config and not args.checkpoint:
        print("s2-srgan: error: tune needs --config and/or --checkpoint", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.config:
        from srgan.config import load_config
        from srgan.step_trial import tune_step

        config = load_config(args.config, parse_set(args.set))
        step = tune_step(config, compile_on_cpu=args.compile, log=log)
        results["training_step"] = step.as_dict()
        print(f"training step: {step.settings.describe()}")
    if args.checkpoint:
        from srgan.checkpoint_io import CheckpointError
        from srgan.inference import load_inference_model
        from srgan.inference_tuning import tune_inference

        try:
            model = load_inference_model(args.checkpoint, device=args.device, precision="float32")
        except CheckpointError as err:
            print(f"s2-srgan: error: {err}", file=sys.stderr)
            return 2
        trial = tune_inference(model, overlap=args.overlap, log=log)
        results["inference"] = trial.as_dict()
        best = trial.best
        print(
            f"inference: {best.precision}, tile {best.tile_size}, batch {best.batch_size} "
            f"({best.output_mp_per_s} output MP/s)"
        )
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0
