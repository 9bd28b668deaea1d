"""Load a trained generator for inference: weights-only, EMA by default, with its recorded config.

Only the generator is built (no discriminator, no losses), so a checkpoint trained with a
perceptual loss needs no VGG weights on the inference machine.

Example::

    model = load_inference_model("runs/try1/checkpoints/best.ckpt")
    model.bands, model.scale             # (('B02', 'B03', 'B04', 'B08'), 4)
    sr = model.predict(lr)               # (B, 4, h, w) normalised → (B, 4, 4h, 4w)

Predictions run through a rewritten copy of the generator (:mod:`srgan.inference_graph`:
exact reformulations of its slow layers, NHWC weights, inference mode) in float32 or bfloat16:
bfloat16 on a GPU, and on a CPU where ``s2-srgan tune`` measured it faster
(:mod:`srgan.inference_tuning`); float32 otherwise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from srgan.build import generator_from_config
from srgan.checkpoint_io import CheckpointError, load_checkpoint
from srgan.config import ConfigError, TrainingConfig, validate_config
from srgan.inference_graph import prepare_for_inference
from srgan.inference_tuning import measured_inference_settings
from srgan.lineage import CheckpointLineage, read_lineage

log = logging.getLogger(__name__)

GENERATOR_PREFIX = "generator."
EMA_PREFIX = "ema.averaged.module."
EMA_COUNT = "ema.averaged.n_averaged"

Weights = Literal["ema", "generator"]
#: ``auto``: bfloat16 on a GPU; on the CPU what ``s2-srgan tune`` measured faster, else float32.
Precision = Literal["auto", "float32", "bfloat16"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else the first CUDA GPU when present, else the CPU.

    Raises:
        ValueError: ``device`` names a CUDA device but none is available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {chosen} asked for, but no CUDA GPU is available; use 'cpu'")
    return chosen


@dataclass(frozen=True)
class InferenceModel:
    """A generator ready for inference, with what is needed to feed it correctly.

    Attributes:
        generator: The network as trained, in eval mode on :attr:`device` (channels-last);
            maps normalised ``(B, C, h, w)`` float32 to ``(B, C, h·scale, w·scale)``.
        config: The training config recorded in the checkpoint.
        checkpoint: Where the weights came from.
        weights: ``"ema"`` (the averaged generator) or ``"generator"`` (the raw one).
        device: Where :meth:`predict` runs.
        runtime: What :meth:`predict` runs: ``generator`` rewritten by
            :func:`~srgan.inference_graph.prepare_for_inference`, with :attr:`dtype` weights.
        dtype: ``torch.float32`` or ``torch.bfloat16``.
        lineage: What the checkpoint records of its training data (degradation, store, run).
    """

    generator: nn.Module
    config: TrainingConfig
    checkpoint: str
    weights: Weights
    device: torch.device
    runtime: nn.Module
    dtype: torch.dtype = torch.float32
    lineage: CheckpointLineage = field(default_factory=CheckpointLineage)

    @property
    def bands(self) -> tuple[str, ...]:
        """Band names the generator was trained on, in input order."""
        return tuple(self.config.data.bands)

    @property
    def scale(self) -> int:
        """Upscaling factor."""
        return int(self.config.data.scale)

    @property
    def normalisation(self) -> str:
        """Name of the normalisation used in training (see ``datasets.normalise``)."""
        return str(self.config.data.normalisation)

    @property
    def precision(self) -> str:
        """``"float32"`` or ``"bfloat16"``: the type :meth:`predict` computes in."""
        return "bfloat16" if self.dtype == torch.bfloat16 else "float32"

    @torch.inference_mode()
    def predict(self, lr: Tensor) -> Tensor:
        """Super-resolve normalised tiles in :attr:`dtype` (see :attr:`runtime`).

        Args:
            lr: ``(B, C, h, w)`` float32 in the training normalisation, on any device.

        Returns:
            ``(B, C, h·scale, w·scale)`` float32 on :attr:`device`, same normalisation.
        """
        x = lr.to(self.device, torch.float32, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.runtime(x).contiguous()


def _config_of(checkpoint: dict[str, Any], uri: str) -> TrainingConfig:
    recorded = checkpoint.get("hyper_parameters", {}).get("config")
    if not isinstance(recorded, dict):
        raise CheckpointError(
            f"{uri} records no training config (hyper_parameters['config']); only checkpoints "
            "written by s2-srgan training can be used for inference"
        )
    try:
        return validate_config(recorded)
    except ConfigError as err:
        raise CheckpointError(
            f"{uri} records a config this version cannot read: {err}. Use the s2-srgan version "
            "that trained it, or retrain"
        ) from None


def _weights_of(state: dict[str, Tensor], use_ema: bool, uri: str) -> tuple[dict, Weights]:
    ema_count = state.get(EMA_COUNT)
    if use_ema and ema_count is not None and int(ema_count) > 0:
        prefix, weights = EMA_PREFIX, "ema"
    else:
        if use_ema:
            log.warning("%s has no updated EMA weights; using the raw generator", uri)
        prefix, weights = GENERATOR_PREFIX, "generator"
    selected = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return selected, weights  # type: ignore[return-value]


def load_inference_model(
    checkpoint: str | os.PathLike[str],
    *,
    use_ema: bool = True,
    device: str | torch.device | None = None,
    precision: Precision = "auto",
) -> InferenceModel:
    """Load a checkpoint weights-only (no pickled code runs) and build its generator.

    Args:
        checkpoint: ``.ckpt`` path or fsspec URL (``s3://…``).
        use_ema: Use the EMA weights when the checkpoint has updated ones (the default, as in
            validation); ``False`` takes the raw generator.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` …; default: a GPU when present.
        precision: ``"float32"``, ``"bfloat16"``, or ``"auto"``: bfloat16 on a GPU, on the
            CPU the precision ``s2-srgan tune`` measured faster for this generator on this
            machine (float32 when it has not been measured).

    Returns:
        The generator in eval mode on the device, with its config.

    Raises:
        CheckpointError: The file is missing, damaged, records no usable config, or its
            weights do not fit the generator its config describes.
        ValueError: ``device`` is a CUDA device but no GPU is available.
    """
    uri = os.fspath(checkpoint)
    target = pick_device(device)
    loaded = load_checkpoint(uri, mapped=True)  # the generator's weights are copied out
    config = _config_of(loaded, uri)
    weights, source = _weights_of(loaded["state_dict"], use_ema, uri)
    generator = generator_from_config(config)
    try:
        generator.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"the {source} weights in {uri} do not fit the generator its config describes "
            f"({config.generator.name}, {config.in_bands} bands, ×{config.data.scale}): {err}"
        ) from None
    generator.eval().requires_grad_(False).to(target)
    # NHWC: oneDNN (CPU) and cuDNN (GPU) convolutions then run without layout reorders;
    # torch's stubs lack the memory_format keyword that Module.to accepts
    generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    dtype = DTYPES[resolve_precision(precision, config, target)]
    runtime = prepare_for_inference(generator, dtype)
    return InferenceModel(
        generator, config, uri, source, target, runtime, dtype, read_lineage(loaded)
    )


def resolve_precision(precision: Precision, config: TrainingConfig, device: torch.device) -> str:
    """``precision`` with ``"auto"`` decided (see :func:`load_inference_model`).

    Raises:
        ValueError: ``precision`` is not one of ``auto``, ``float32``, ``bfloat16``.
    """
    if precision not in ("auto", *DTYPES):
        raise ValueError(f"precision must be auto, float32 or bfloat16; got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bfloat16"
    measured = measured_inference_settings(config, device)
    return measured.precision if measured is not None else "float32"
