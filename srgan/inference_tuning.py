"""Tile size, batch size and precision of scene inference, measured on this machine.

How fast a generator runs on a tile depends on the tile: small tiles keep the upsampler's
large feature maps in cache, large tiles recompute less of their overlap with the neighbours,
and bfloat16 is several times faster than float32 on CPUs with matrix units (AMX) and slower
on CPUs without them. :func:`tune_inference` times the candidates on the machine at hand and
keeps the one with the most *output* pixels per second (tile throughput divided by the
overlap's recomputation), or among those within :data:`TIE_MARGIN` of it the one with the
fewest pixels per call (a scene's memory grows with the tile: its strips are a tile high);
:func:`measured_inference_settings` reads that choice back from the tuning cache
(:mod:`srgan.tuning_cache`), so a run starts without a trial.

Example::

    trial = tune_inference(load_inference_model("best.ckpt", precision="float32"))
    trial.best.tile_size, trial.best.batch_size, trial.best.precision
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from srgan.config import TrainingConfig
from srgan.tuning_cache import TuningCache, tuning_key

if TYPE_CHECKING:
    from srgan.inference import InferenceModel

KIND = "inference"
#: Used when nothing was measured on this machine (the values of issue #6's benchmark).
DEFAULT_TILE_SIZE = 128
DEFAULT_BATCH_SIZE = 8
DEFAULT_OVERLAP = 16
#: LR tile edges tried, smallest first. None above 256: a scene's strips are a tile high and
#: as wide as the output, so memory grows with the edge faster than speed does. On a 5490²
#: scene of the 10 m preset (AMD EPYC, bf16) tile 384 ran the model 4–7 % faster than 256 and
#: peaked at 2.8–3.0 GiB instead of 2.4 (issue #15: at most 2.5); ``--tile-size`` still takes
#: any edge.
TILE_CANDIDATES = (64, 96, 128, 192, 256)
BATCH_CANDIDATES = (1, 2, 4, 8)
#: Largest batch × tile² (LR pixels) tried: bounds the trial's (and the run's) memory. One
#: 256² tile: a full-width scene of the 10 m preset peaks below 2.5 GiB with it (bf16, AMD
#: EPYC), and two such tiles per call ran 8 % slower than one there, in float32 and bf16.
MAX_BATCH_PIXELS = 256 * 256
#: Candidates this close to the fastest (share of its output MP/s) count as tied, about the
#: trial's own run-to-run spread; the one with the fewest LR pixels per call (batch × tile²)
#: wins: the smaller tile of two about as fast ones costs less memory.
TIE_MARGIN = 0.03
#: bfloat16 is only chosen when its output stays this close to float32's (mean absolute
#: difference in the training normalisation, whose values span about 1).
BF16_TOLERANCE = 5e-3


@dataclass(frozen=True)
class InferenceSettings:
    """How scene inference runs: precision, LR tile edge and tiles per generator call."""

    precision: str = "float32"
    tile_size: int = DEFAULT_TILE_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    #: Output (HR) megapixels per second measured for these settings, overlap counted.
    output_mp_per_s: float | None = None


@dataclass(frozen=True)
class Candidate:
    """One timed setting: seconds per generator call and what that means per output pixel."""

    precision: str
    tile_size: int
    batch_size: int
    seconds: float
    output_mp_per_s: float


@dataclass
class InferenceTrial:
    """The outcome of :func:`tune_inference`: the winner and every candidate timed."""

    best: InferenceSettings
    candidates: list[Candidate] = field(default_factory=list)
    bf16_mean_abs_difference: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def overlap_recompute(tile: int, overlap: int) -> float:
    """Tile pixels computed per output pixel on a large scene (``(t / (t - overlap))²``)."""
    return (tile / (tile - overlap)) ** 2


def smallest_of_the_fastest(
    candidates: Sequence[Candidate], margin: float | None = None
) -> Candidate:
    """The candidate with the fewest LR pixels per call among those within ``margin``
    (default :data:`TIE_MARGIN`) of the fastest output throughput; the faster on a tie."""
    margin = TIE_MARGIN if margin is None else margin
    fastest = max(c.output_mp_per_s for c in candidates)
    tied = [c for c in candidates if c.output_mp_per_s >= (1 - margin) * fastest]
    return min(tied, key=lambda c: (c.batch_size * c.tile_size**2, -c.output_mp_per_s))


def _job(config: TrainingConfig, overlap: int) -> dict[str, Any]:
    return {
        "generator": config.generator.model_dump(mode="json"),
        "bands": config.in_bands,
        "scale": config.data.scale,
        "overlap": overlap,
    }


def measured_inference_settings(
    config: TrainingConfig, device: torch.device, overlap: int = DEFAULT_OVERLAP
) -> InferenceSettings | None:
    """The settings ``s2-srgan tune`` measured for this generator on this machine, if any."""
    entry = TuningCache().get(tuning_key(KIND, _job(config, overlap), device))
    if entry is None:
        return None
    fields = InferenceSettings.__dataclass_fields__
    return InferenceSettings(**{k: v for k, v in entry.items() if k in fields})


def tiling_for(
    model: InferenceModel,
    tile_size: int | None,
    batch_size: int | None,
    overlap: int = DEFAULT_OVERLAP,
) -> tuple[int, int]:
    """Tile and batch size for a run: explicit values win, then the measured ones, then the
    defaults (:data:`DEFAULT_TILE_SIZE`, :data:`DEFAULT_BATCH_SIZE`)."""
    measured = measured_inference_settings(model.config, model.device, overlap)
    if measured is not None and measured.precision != model.precision:
        measured = None  # measured for the other precision; its tile sizes may not carry over
    base = measured or InferenceSettings()
    return tile_size or base.tile_size, batch_size or base.batch_size


def _time_call(fn: Callable[[], object], sync: Callable[[], None], repeats: int) -> float:
    fn()  # the first call of a shape builds oneDNN/cuDNN kernels
    sync()
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - started)
    return best


def _smooth_input(batch: int, bands: int, tile: int, device: torch.device) -> torch.Tensor:
    """Image-like normalised input: a smooth field plus fine texture, values in [0, 1]."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, bands, max(tile // 16, 2), max(tile // 16, 2), generator=generator)
    field_ = torch.nn.functional.interpolate(coarse, size=(tile, tile), mode="bicubic")
    noise = 0.05 * torch.rand(batch, bands, tile, tile, generator=generator)
    return (0.8 * field_ + noise).clamp(0, 1).to(device)


def bf16_difference(model: InferenceModel, tile: int = 64) -> float:
    """Mean absolute difference of bfloat16 against float32 output on an image-like tile."""
    from srgan.inference_graph import prepare_for_inference

    x = _smooth_input(1, model.config.in_bands, tile, model.device)
    with torch.inference_mode():
        fp32 = prepare_for_inference(model.generator, torch.float32)(x)
        bf16 = prepare_for_inference(model.generator, torch.bfloat16)(x)
    return float((bf16 - fp32).abs().mean())


def tune_inference(
    model: InferenceModel,
    overlap: int = DEFAULT_OVERLAP,
    precisions: Sequence[str] = ("float32", "bfloat16"),
    tiles: Sequence[int] = TILE_CANDIDATES,
    batches: Sequence[int] = BATCH_CANDIDATES,
    repeats: int = 2,
    store: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> InferenceTrial:
    """Time tile sizes, batch sizes and precisions; keep (and cache) the fastest per output pixel.

    For each precision the tile edge grows while the output throughput still improves (one
    worse size is tolerated); then, at the best edge, the batch grows the same way. Of every
    candidate timed, :func:`smallest_of_the_fastest` is kept. bfloat16
    is dropped when :func:`bf16_difference` exceeds :data:`BF16_TOLERANCE`.

    Args:
        model: The loaded generator (its device and weights are used; its precision is not).
        overlap: The LR overlap the run will use (it sets the recomputation).
        precisions: Precisions to try.
        tiles: LR tile edges to try (each must exceed ``2 · overlap``).
        batches: Batch sizes to try.
        repeats: Timed calls per candidate (the best counts: a neighbour's load only slows).
        store: Write the winner into the tuning cache.
        log: Receives one line per candidate.

    Returns:
        The winner and the timings.
    """
    from srgan.inference_graph import prepare_for_inference

    started = time.perf_counter()
    device = model.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    bands, scale = model.config.in_bands, model.config.data.scale
    trial = InferenceTrial(best=InferenceSettings())
    if "bfloat16" in precisions:
        trial.bf16_mean_abs_difference = bf16_difference(model)
        if trial.bf16_mean_abs_difference > BF16_TOLERANCE:
            log(f"bfloat16 differs by {trial.bf16_mean_abs_difference:.2e} on average: not used")
            precisions = [p for p in precisions if p != "bfloat16"]

    def measure(precision: str, net: torch.nn.Module, tile: int, batch: int) -> Candidate:
        x = _smooth_input(batch, bands, tile, device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            seconds = _time_call(lambda: net(x), sync, repeats)
        out_mp = batch * (tile * scale) ** 2 / 1e6 / overlap_recompute(tile, overlap)
        candidate = Candidate(precision, tile, batch, seconds, out_mp / seconds)
        trial.candidates.append(candidate)
        log(
            f"{precision} tile {tile} batch {batch}: {seconds:.3f} s/call, "
            f"{candidate.output_mp_per_s:.3f} output MP/s"
        )
        return candidate

    def climb(values: Sequence[int], run: Callable[[int], Candidate]) -> Candidate:
        best: Candidate | None = None
        worse = 0
        for value in values:
            candidate = run(value)
            if best is None or candidate.output_mp_per_s > best.output_mp_per_s:
                best, worse = candidate, 0
            else:
                worse += 1
                if worse == 2:
                    break
        assert best is not None
        return best

    for precision in precisions:
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        net = prepare_for_inference(model.generator, dtype)
        usable = [t for t in tiles if t > 2 * overlap]

        def by_tile_edge(tile: int, p: str = precision, n: torch.nn.Module = net) -> Candidate:
            return measure(p, n, tile, 1)

        by_tile = climb(usable, by_tile_edge)

        def by_batch_size(
            batch: int, p: str = precision, n: torch.nn.Module = net, t: int = by_tile.tile_size
        ) -> Candidate:
            return measure(p, n, t, batch)

        fits = [b for b in batches if b > 1 and b * by_tile.tile_size**2 <= MAX_BATCH_PIXELS]
        if fits:
            climb(fits, by_batch_size)
        del net
    top = smallest_of_the_fastest(trial.candidates)
    trial.best = InferenceSettings(
        top.precision, top.tile_size, top.batch_size, round(top.output_mp_per_s, 4)
    )
    trial.seconds = time.perf_counter() - started
    if store:
        key = tuning_key(KIND, _job(model.config, overlap), device)
        TuningCache().put(key, asdict(trial.best))
    return trial
