"""The training configuration: one pydantic schema, defaults in exactly one place.

Presets ship as YAML files in ``srgan/presets/``; :func:`load_config` reads a preset name or a YAML
path, applies nested overrides and validates the result. Unknown keys and bad values are refused
with a :class:`ConfigError` that names the key and the valid choices.

Example::

    cfg = load_config("cpu-tiny", overrides={"schedule": {"max_iterations": 50}})
    cfg.generator.channels
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datasets.normalise import NormalisationName
from srgan.family_sections import (
    FAMILY_REGISTRIES,
    DiscriminatorConfig,
    GeneratorConfig,
    migrate_flat_families,
    without_family_tag,
    without_switched_families,
)
from srgan.losses.adversarial import AdversarialKind
from srgan.losses.perceptual import PerceptualLayer
from srgan.models import SRGANDiscriminatorConfig, SRResNetConfig
from srgan.presets import preset_file, preset_names

ValMetric = Literal[
    "l1", "psnr", "ssim", "sam", "ergas", "improvement", "omission", "hallucination"
]

#: Whether a larger value of a validation metric is better. The last three are opensr-test's
#: shares of the pixels where SR differs (:mod:`srgan.opensr_shares`).
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {
    "l1": False,
    "psnr": True,
    "ssim": True,
    "sam": False,
    "ergas": False,
    "improvement": True,
    "omission": False,
    "hallucination": False,
}


class ConfigError(ValueError):
    """A training configuration is invalid; the message names the key and the valid values."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the patches come from and how they are batched."""

    store: str | None = None
    version: str | None = None
    bands: list[str] = Field(default_factory=lambda: ["B02", "B03", "B04", "B08"], min_length=1)
    scale: Literal[2, 4, 8] = 4
    normalisation: NormalisationName = "normalise_10k"
    batch_size: int = Field(16, ge=1)
    val_batch_size: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)
    augment: bool = True
    seed: int = 0


class LossConfig(_Strict):
    """Content terms, adversarial objective and the adversarial weight ``beta``."""

    l1_weight: float = Field(1.0, ge=0)
    sam_weight: float = Field(0.0, ge=0)
    tv_weight: float = Field(0.0, ge=0)
    perceptual_weight: float = Field(0.0, ge=0)
    perceptual_weights_path: str | None = None
    perceptual_layer: PerceptualLayer = "relu5_4"
    perceptual_bands: list[int] | None = None
    adversarial: AdversarialKind = "bce"
    real_label: float = Field(1.0, gt=0, le=1)
    r1_gamma: float = Field(0.0, ge=0)
    adv_weight: float = Field(1e-3, ge=0)

    @model_validator(mode="after")
    def _check_objective(self) -> LossConfig:
        if self.adversarial == "wasserstein" and self.r1_gamma == 0:
            raise ValueError(
                "losses.adversarial='wasserstein' needs a gradient penalty: set losses.r1_gamma > 0"
            )
        if self.perceptual_weight > 0 and not self.perceptual_weights_path:
            raise ValueError(
                "losses.perceptual_weight > 0 needs local VGG19 weights: set "
                "losses.perceptual_weights_path (nothing is downloaded) or set the weight to 0"
            )
        if self.l1_weight + self.sam_weight + self.tv_weight + self.perceptual_weight == 0:
            raise ValueError("all content loss weights are 0: set at least losses.l1_weight > 0")
        return self


class ScheduleConfig(_Strict):
    """Step schedules, all counted in training iterations (batches), never optimizer steps."""

    pretrain_iterations: int = Field(0, ge=0)
    ramp_iterations: int = Field(0, ge=0)
    ramp: Literal["linear", "cosine"] = "linear"
    max_iterations: int | None = Field(None, ge=1)


class OptimizerConfig(_Strict):
    """One optimizer with its LR warm-up, plateau reduction and gradient clipping."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    warmup_iterations: int = Field(0, ge=0)
    warmup: Literal["linear", "cosine"] = "linear"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(10, ge=0)
    min_lr: float = Field(1e-7, ge=0)
    grad_clip_norm: float | None = Field(None, gt=0)


class OptimConfig(_Strict):
    """Both optimizers and the validation metric the plateau schedulers watch."""

    generator: OptimizerConfig = Field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = Field(default_factory=OptimizerConfig)
    plateau_metric: ValMetric = "l1"
    # The fused Adam/AdamW kernel updates each tensor in one pass; torch's CPU default is a
    # per-tensor loop with several full-size temporaries (D's 19 M-weight dense layer dominates).
    # None: what `s2-srgan tune` measured on this machine, else on (srgan/step_settings.py).
    fused: bool | None = None


class EMAConfig(_Strict):
    """Exponential moving average of the generator weights."""

    enabled: bool = True
    decay: float = Field(0.999, gt=0, lt=1)
    start_iteration: int = Field(0, ge=0)
    warmup: bool = False


class ValidationConfig(_Strict):
    """How often to validate, what to preview, and the train-batch metric interval."""

    every_n_iterations: int = Field(500, ge=1)
    limit_batches: int | float = 1.0
    preview_bands: list[int] = Field(default_factory=lambda: [2, 1, 0])
    preview_samples: int = Field(3, ge=1)
    # HR pixels per preview panel side: a centre crop, or the whole (magnified) smaller patch
    preview_crop: int = Field(128, ge=16)
    train_metrics_every: int = Field(50, ge=1)
    best_metric: ValMetric = "l1"


class LoggerConfig(_Strict):
    """Where the run's metrics go besides its own ``logs/metrics.csv`` (always written).

    ``csv``: nowhere else; ``tensorboard``: event files in ``<run_dir>/tensorboard``;
    ``mlflow``: an MLflow tracking server (install ``s2-srgan[mlflow]``). In YAML, a plain
    name (``logger: tensorboard``) stands for ``{name: tensorboard}``.
    """

    name: Literal["csv", "tensorboard", "mlflow"] = "csv"
    # mlflow only: the server (default: $MLFLOW_TRACKING_URI) and the experiment of the run
    tracking_uri: str | None = None
    experiment: str = Field("s2-srgan", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _mlflow_fields(self) -> LoggerConfig:
        # their defaults pass (a dumped config holds every field), other values do not
        defaults = LoggerConfig.model_fields
        for key in ("tracking_uri", "experiment"):
            if self.name != "mlflow" and getattr(self, key) != defaults[key].default:
                raise ValueError(f"{key} is for name: mlflow, not {self.name}")
        return self


class TrainerConfig(_Strict):
    """Lightning Trainer settings; nothing here names a particular device."""

    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    # None: bf16-mixed on a GPU; on the CPU bf16-mixed where `s2-srgan tune` measured it faster
    # (its quality: bench/RESULTS.md, "quality"), else 32-true.
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] | None = None
    max_epochs: int | None = Field(None, ge=1)
    log_every_n_iterations: int = Field(10, ge=1)
    checkpoint_every_n_iterations: int = Field(200, ge=1)
    finite_check_every: int = Field(1, ge=1)
    seed: int = 0
    deterministic: bool = False
    # The speed settings below change how the step runs, not what it computes. None (the
    # default) means: what `s2-srgan tune` measured for this config on this machine, else the
    # built-in choice named in each comment (srgan/step_settings.py); a value given here wins.
    # NHWC weights and batches: oneDNN (CPU) and cuDNN convolutions run without layout reorders
    # (built-in: on).
    channels_last: bool | None = None
    # torch.compile G and D in place (first iterations compile; state_dict keys are unchanged;
    # built-in: off).
    compile: bool | None = None
    # glibc only: keep freed memory in the heap during fit instead of an mmap/munmap (and a page
    # fault per 4 KiB) for every large tensor of every step; handed back when fit ends
    # (built-in: on).
    retain_freed_memory: bool | None = None
    # Intra-op CPU threads during fit (built-in: torch's default, one per physical core).
    threads: int | None = Field(None, ge=1)
    # off: ignore measurements; cached: use them when this machine has them; trial: measure
    # at fit start when it has none (a short timed trial, then cached).
    autotune: Literal["off", "cached", "trial"] = "cached"
    logger: LoggerConfig = Field(default_factory=LoggerConfig)


class TrainingConfig(_Strict):
    """The whole training configuration."""

    data: DataConfig = Field(default_factory=DataConfig)
    generator: GeneratorConfig = Field(default_factory=SRResNetConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=SRGANDiscriminatorConfig)
    losses: LossConfig = Field(default_factory=LossConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate_flat_families(data)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> TrainingConfig:
        if self.schedule.max_iterations is None and self.trainer.max_epochs is None:
            raise ValueError("set schedule.max_iterations or trainer.max_epochs (or both)")
        n_bands = len(self.data.bands)
        bad = [b for b in self.validation.preview_bands if not 0 <= b < n_bands]
        if bad:
            raise ValueError(
                f"validation.preview_bands {bad} out of range for {n_bands} bands {self.data.bands}"
            )
        if n_bands == 1:
            # the spectral angle needs at least two bands; validation does not compute it
            for key, metric in (
                ("optim.plateau_metric", self.optim.plateau_metric),
                ("validation.best_metric", self.validation.best_metric),
            ):
                if metric == "sam":
                    raise ValueError(
                        f"{key}: sam needs at least 2 bands, data.bands has 1 "
                        f"({self.data.bands[0]}); choose l1, psnr, ssim or ergas"
                    )
        return self

    @property
    def in_bands(self) -> int:
        """Number of spectral bands the networks see."""
        return len(self.data.bands)

    @property
    def data_range(self) -> float:
        """Span of normalised values, used by PSNR/SSIM (2 for the signed normalisation)."""
        return 2.0 if self.data.normalisation == "normalise_10k_signed" else 1.0


def _read_yaml(name_or_path: str | Path) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
    else:
        preset = preset_file(str(name_or_path))
        if preset is None:
            raise ConfigError(
                f"unknown preset {str(name_or_path)!r}; choose one of: {', '.join(preset_names())} "
                "or give a path to a YAML file"
            )
        text = preset.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {name_or_path} must be a mapping at the top level")
    return data


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    loc, family_config = without_family_tag(loc)
    model: type[BaseModel] = TrainingConfig
    for depth, part in enumerate(loc):
        field = model.model_fields.get(str(part))
        annotation = family_config if depth == 0 and family_config else field and field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _explain(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in without_family_tag(loc)[0]) or "<root>"
        if err["type"] == "union_tag_invalid":  # an unknown family name
            choices = [repr(name) for name in FAMILY_REGISTRIES[key]]
            lines.append(
                f"{key}.name: unknown family {err['ctx']['tag']!r}; choose "
                f"{', '.join(choices[:-1])} or {choices[-1]}"
            )
        elif err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            valid = ", ".join(parent.model_fields) if parent else "?"
            lines.append(f"unknown key {key!r}; valid keys here: {valid}")
        else:
            lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid training config:\n  " + "\n  ".join(lines)


def validate_config(data: Mapping[str, Any]) -> TrainingConfig:
    """Validate a mapping as a :class:`TrainingConfig`.

    Raises:
        ConfigError: naming every bad key with the valid keys or values.
    """
    try:
        return TrainingConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_explain(err)) from None


def load_config(
    name_or_path: str | Path = "cpu-tiny", overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """Load a preset (by name) or a YAML file and apply nested ``overrides``.

    Raises:
        ConfigError: unknown preset, missing file, unknown keys or invalid values.
    """
    data = _read_yaml(name_or_path)
    if overrides:
        data = deep_merge(without_switched_families(data, overrides), overrides)
    return validate_config(data)
