"""What a scene reader finds in a layout: the band files, the hints about their radiometry and
the cloud masks that come with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets.harmonise import RadiometryHints
from datasets.scenes.base import BandSource

MASK_KINDS = ("scl", "classi")
"""Cloud masks a product may carry: the L2A Scene Classification Layer (``*_SCL_20m.jp2``) and
the L1C classification mask of baseline 04.00 and later (``QI_DATA/MSK_CLASSI_B00.jp2``)."""


@dataclass(frozen=True)
class Layout:
    """One scene as a reader found it.

    Attributes:
        scene_id: The scene's identifier before sanitising (product, item, file or folder name).
        sources: Where each requested band is read, in request order.
        hints: Product metadata, STAC Item radiometry and names, for the harmonisation rule.
        masks: Mask kind (see :data:`MASK_KINDS`) → URI of the mask raster, where present.
        grid_claims: Band → ``(shape, transform)`` its description claims (a STAC Item's
            ``proj:shape``/``proj:transform``), checked against the file when it is opened.
    """

    scene_id: str
    sources: Sequence[BandSource]
    hints: RadiometryHints
    masks: Mapping[str, str] = field(default_factory=dict)
    grid_claims: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
