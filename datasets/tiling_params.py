"""Everything that decides how scenes become patches, as one validated model.

:class:`TilingParams` is built once — by the ``s2-srgan tile`` command or the ``tile-sentinel2``
flow from their parameters, or directly in Python — and passed unchanged to the task and to
:func:`datasets.tiling.tile_scene`. A new tiling option is added here, in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datasets.degradation import Degradation
from datasets.errors import TilingError
from datasets.harmonise import HarmonisationParam
from datasets.scenes.bands import DEFAULT_BANDS, check_bands
from datasets.split_policy import SplitPolicy

ResamplingName = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"]
"""GDAL resampling methods offered for bands on a coarser grid than the finest one."""

SCL_CLASSES = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}
"""Classes of the Level-2A Scene Classification Layer (ESA, Sen2Cor)."""
CLASSI_LAYERS = ("opaque", "cirrus", "snow")
"""Bands of ``MSK_CLASSI_B00`` (Level-1C from baseline 04.00), in file order."""
MaskSource = Literal["auto", "scl", "classi", "s2cloudless", "none"]
"""Where a cloud mask comes from (see :class:`MaskPolicy`)."""


class MaskPolicy(BaseModel):
    """Which pixels a cloud mask marks, and how many of them a kept patch may hold.

    Attributes:
        source: ``auto`` uses the product's SCL (Level-2A) if it has one, else its
            ``MSK_CLASSI_B00`` (Level-1C), else no cloud mask (the brightness filter,
            ``max_bright_fraction``, is then the only cloud filter); ``scl`` / ``classi``
            require that mask; ``s2cloudless`` computes one from a Level-1C product's
            top-of-atmosphere reflectance (:mod:`datasets.s2cloudless_mask`; needs the
            ``s2cloudless`` extra); ``none`` ignores masks.
        scl_classes: SCL classes that mask a pixel (default: no data, saturated or defective,
            cloud shadows, cloud medium and high probability, thin cirrus).
        classi_layers: ``MSK_CLASSI_B00`` layers that mask a pixel.
        s2cloudless_threshold: Cloud probability above which s2cloudless masks a pixel
            (its own default, 0.4; lower masks more).
        max_masked_fraction: A patch with a larger fraction of masked pixels is dropped.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: MaskSource = "auto"
    scl_classes: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
    classi_layers: tuple[Literal["opaque", "cirrus", "snow"], ...] = ("opaque", "cirrus")
    s2cloudless_threshold: float = Field(default=0.4, gt=0.0, lt=1.0)
    max_masked_fraction: float = Field(default=0.05, ge=0.0, le=1.0)

    @field_validator("scl_classes")
    @classmethod
    def _known_classes(cls, classes: tuple[int, ...]) -> tuple[int, ...]:
        unknown = sorted(set(classes) - set(SCL_CLASSES))
        if unknown:
            raise ValueError(f"unknown SCL classes {unknown}; classes are 0-11")
        return tuple(sorted(set(classes)))


class TilingParams(BaseModel):
    """How scenes are cut into HR/LR patch pairs (see :func:`datasets.tiling.tile_scene`).

    Attributes:
        bands: Band names, in store order.
        scale: HR pixels per LR pixel along one axis.
        patch_size: HR patch edge in pixels; a multiple of ``scale``.
        stride: HR pixels between patch origins (default ``patch_size``); a multiple of
            ``scale``.
        degradation: How LR patches are made.
        split: Train/validation assignment by scene or spatial block.
        max_nodata_fraction: Drop patches with a larger fraction of missing pixels.
        max_bright_fraction: Drop patches with a larger fraction of bright pixels (a cloud
            proxy for scenes without a cloud mask; ``None``: off).
        bright_threshold: Reflectance ×10000 above which a pixel is bright in a band.
        masks: The cloud-mask policy.
        resampling: Resample bands of coarser native resolution onto the finest band's grid
            with this method; without it such band sets are refused.
        harmonisation: The radiometry of scenes without product metadata or STAC Item (see
            :mod:`datasets.harmonise`).
        sign: For STAC Items, the signer of asset URLs (``"planetary-computer"``), if the
            catalogue needs one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bands: tuple[str, ...] = DEFAULT_BANDS
    scale: int = Field(default=4, ge=1, le=16)
    patch_size: int = Field(default=128, ge=1)
    stride: int | None = Field(default=None, ge=1)
    degradation: Degradation = Degradation()
    split: SplitPolicy = SplitPolicy()
    max_nodata_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    max_bright_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    bright_threshold: int = Field(default=3000, ge=0, le=65535)
    masks: MaskPolicy = MaskPolicy()
    resampling: ResamplingName | None = None
    harmonisation: HarmonisationParam | None = None
    sign: Literal["planetary-computer"] | None = None

    @field_validator("bands", mode="before")
    @classmethod
    def _canonical_bands(cls, bands: Any) -> tuple[str, ...]:
        return check_bands(bands)

    @model_validator(mode="after")
    def _whole_lr_pixels(self) -> TilingParams:
        if self.patch_size % self.scale or self.step % self.scale:
            raise ValueError(
                f"patch_size ({self.patch_size}) and stride ({self.step}) must be multiples of "
                f"scale ({self.scale}) so every LR patch falls on whole LR pixels; e.g. "
                f"patch_size={max(self.scale, self.patch_size // self.scale * self.scale)}"
            )
        return self

    @property
    def step(self) -> int:
        """HR pixels between patch origins: ``stride``, or ``patch_size`` when unset."""
        return self.patch_size if self.stride is None else self.stride

    @classmethod
    def build(cls, **fields: Any) -> TilingParams:
        """Validate ``fields``, raising a one-line :class:`TilingError` for bad values.

        Raises:
            TilingError: A field is unknown, out of range or inconsistent with another; the
                message names each and the valid names for a misspelt one.
        """
        try:
            return cls(**fields)
        except ValidationError as err:
            problems = []
            for error in err.errors():
                where = ".".join(str(part) for part in error["loc"]) or "parameters"
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = f"unknown option; options are {', '.join(cls.model_fields)}"
                problems.append(f"{where}: {message}")
            raise TilingError("; ".join(problems)) from None
