"""The model card of a trained checkpoint: a markdown page for the people who use its outputs.

Sections: what the model does; its inputs and outputs (bands in order, normalisation, scale);
architecture and size; the training data (store version, every scene with its harmonisation);
the validation metrics beside bicubic upsampling, the opensr-test shares included; hardware
and time; limitations; the files (checkpoint and its sha256, MLM record).

Example::

    Path("model-card.md").write_text(model_card(facts, mlm_href="mlm-item.json"))
"""

from __future__ import annotations

import json

from srgan.metrics import metric_rows
from srgan.model_facts import ModelFacts

#: How each normalisation maps reflectance ×10000 (``x``) to the network's input.
NORMALISATION_FORMULA = {
    "normalise_10k": "`x / 10000`, clipped to [0, 1]",
    "normalise_10k_signed": "`x / 10000 · 2 − 1`, clipped to [−1, 1]",
    "zero_one": "per patch and band, min-max of the LR input to [0, 1]",
    "identity": "none (float32 cast only)",
}


def _validation(facts: ModelFacts) -> str:
    rows = metric_rows(facts.metrics)
    if not rows:
        return "_no validation metrics recorded_"
    lines = ["| metric | this model | bicubic | gain over bicubic |", "|---|---|---|---|"]
    lines += [f"| {n} | {m:.5g} | {b:.5g} | {g:+.4g} |" for n, m, b, g in rows]
    return "\n".join(lines)


def _scenes(facts: ModelFacts) -> str:
    if not facts.scenes:
        return f"_{facts.scenes_note or 'no scenes recorded'}_"
    lines = [
        "| scene | train patches | val patches | harmonisation | baseline | offset (DN) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.scene} | {s.train} | {s.val} | {s.harmonisation} | {s.baseline} | {s.offset} |"
        for s in facts.scenes
    ]
    return "\n".join(lines)


def model_card(facts: ModelFacts, mlm_href: str | None = None) -> str:
    """The model card (markdown) of a model.

    Args:
        facts: What to state (:func:`~srgan.model_facts.model_facts`).
        mlm_href: Where its STAC MLM record lies, if written.
    """
    config, run = facts.config, facts.run
    bands, scale = facts.bands, config.data.scale
    norm = config.data.normalisation
    hours = run.seconds / 3600
    warm = (
        f"warm-started from `{run.warm_started_from}`" if run.warm_started_from else "from scratch"
    )
    degradation = json.dumps(facts.degradation) if facts.degradation else "not recorded"
    written = f"{facts.created:%Y-%m-%d %H:%M}"
    return f"""# Model card: {facts.name}

Super-resolves Sentinel-2 bands {", ".join(bands)} by ×{scale} (10 m → {10 / scale:g} m for
10 m bands). A generative adversarial network: it adds detail that bicubic upsampling cannot;
some of it can be invented (see *Validation* and *Limitations*).

## Inputs and outputs

| | |
|---|---|
| input bands, in this order | {", ".join(f"`{b}`" for b in bands)} |
| input values | harmonised reflectance ×10000 (uint16; the processing-baseline offset removed) |
| normalisation | `{norm}`: {NORMALISATION_FORMULA.get(norm, norm)} |
| scale | ×{scale}: output height and width are {scale} × the input's; any input size |
| output | the same bands, same order, reflectance ×10000 after the inverse normalisation |

## Architecture

- generator: `{facts.architecture}`, **{facts.total_parameters:,} parameters**; inference uses
  the `{facts.weights}` weights
- discriminator (training only): `{config.discriminator.name}`
- generator settings: `{json.dumps(config.generator.model_dump(mode="json"))}`

## Training data

- patch store: `{facts.store}`, version `{facts.store_version}`
- degradation of the LR patches: `{degradation}`

{_scenes(facts)}

## Validation

On the validation split of the store version above (patches of whole scenes or spatial
blocks, never seen in training). PSNR, SSIM, SAM (radians), ERGAS and L1 on the normalised
values; improvement / omission / hallucination: ESA opensr-test's shares of the pixels where
the output differs (improvement: detail that is in the truth; omission: stays as blurry as
the input; hallucination: detail that is not there).

{_validation(facts)}

## Hardware and time

- trained on {run.hardware}, precision {run.precision}
- {run.iterations} iterations, {warm}
- wall time {run.seconds:.0f} s ({hours:.2f} h; of its last attempt if it was resumed)

## Limitations

- Trained on the scenes above only: other regions, seasons, processing levels or sensors
  may be super-resolved less faithfully.
- Detail consistent with the input can still be wrong. Every output of `s2-srgan
  super-resolve` carries a QA map and gate (consistency with its input); only a reference
  (`s2-srgan evaluate`) measures hallucination.

## Files

- checkpoint: `{facts.checkpoint}` (sha256 `{facts.checkpoint_sha256}`)
- STAC MLM record: `{mlm_href}`
- software: {facts.software}, torch {facts.framework_version}; card written {written} UTC
"""
