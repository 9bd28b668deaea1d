"""Cloud masks on the scene grid: the Level-2A Scene Classification Layer, the Level-1C
``MSK_CLASSI_B00`` classification mask, or s2cloudless's mask computed from a Level-1C scene.

The mask is resampled (nearest) onto the scene's grid and read window by window like the
bands: each 10 m pixel takes the class of the 20 m SCL pixel (60 m MSK_CLASSI pixel, 160 m
s2cloudless pixel) it lies in. Which classes mask a pixel is set by
:class:`~datasets.tiling_params.MaskPolicy`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window

from datasets.errors import MaskError
from datasets.s2cloudless_mask import S2CloudlessMask, SceneOpener
from datasets.scenes import Scene
from datasets.tiling_params import CLASSI_LAYERS, MaskPolicy

_NAMES = {"scl": "SCL", "classi": "MSK_CLASSI_B00"}


class CloudMask:
    """The cloud mask a policy asks for, on ``scene``'s grid; close it (or use ``with``).

    Args:
        scene: The open scene; its ``masks`` say which mask rasters the product carries.
        policy: Which mask and which classes.
        reopen: Opens other bands of the same scene (``s2cloudless`` reads its own ten).

    Attributes:
        kind: ``"scl"``, ``"classi"``, ``"s2cloudless"`` or ``"none"`` (no mask applies).
        uri: The mask raster, or ``None``.

    Raises:
        MaskError: The policy requires a mask the product lacks, or the mask does not cover
            the scene or has the wrong number of bands; for ``s2cloudless``, as
            :class:`~datasets.s2cloudless_mask.S2CloudlessMask`.
    """

    def __init__(self, scene: Scene, policy: MaskPolicy, reopen: SceneOpener) -> None:
        self.policy = policy
        self.kind = self._choose(scene, policy)
        self.uri = scene.masks.get(self.kind)
        self._reader: Any = None
        self._indexes: list[int] = []
        self._computed: S2CloudlessMask | None = None
        if self.kind == "s2cloudless":
            self._computed = S2CloudlessMask(scene, reopen, policy.s2cloudless_threshold)
        if self.uri is None:
            return
        name = _NAMES[self.kind]
        self._reader = scene.aligned(self.uri, name)
        count = self._reader.count
        if self.kind == "scl":
            self._indexes = [1]
        elif count != len(CLASSI_LAYERS):
            raise MaskError(
                f"{name} {self.uri} has {count} band(s), not the {len(CLASSI_LAYERS)} layers "
                f"({', '.join(CLASSI_LAYERS)}) of baseline 04.00; tile with "
                "masks={'source': 'none'} to ignore it."
            )
        else:
            self._indexes = [CLASSI_LAYERS.index(layer) + 1 for layer in policy.classi_layers]

    @staticmethod
    def _choose(scene: Scene, policy: MaskPolicy) -> str:
        if policy.source in ("none", "s2cloudless"):
            return policy.source
        if policy.source == "auto":
            return next((kind for kind in ("scl", "classi") if kind in scene.masks), "none")
        if policy.source not in scene.masks:
            found = ", ".join(_NAMES[kind] for kind in scene.masks) or "none"
            raise MaskError(
                f"masks.source={policy.source!r} asks for the {_NAMES[policy.source]} of "
                f"{scene.uri}, which it does not carry (masks found: {found}); use "
                "masks.source='auto' or 'none'."
            )
        return policy.source

    @property
    def active(self) -> bool:
        """Whether a mask is read."""
        return self._reader is not None or self._computed is not None

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` bool, True where the mask marks the pixel (all False without a mask).

        Raises:
            MaskError: The mask raster cannot be decoded.
        """
        shape = (int(window.height), int(window.width))
        if self._computed is not None:
            return self._computed.read(window)
        if self._reader is None:
            return np.zeros(shape, dtype=bool)
        try:
            values = self._reader.read(self._indexes, window=window)
        except RasterioError as err:
            raise MaskError(f"Reading {self.uri} failed: {err}; re-download the product.") from err
        if self.kind == "scl":
            return np.isin(values[0], self.policy.scl_classes)
        return np.any(values != 0, axis=0)

    def record(self) -> dict[str, Any]:
        """JSON-ready description of what masked pixels (for the store's scene record)."""
        record: dict[str, Any] = {"source": self.kind, "uri": self.uri}
        if self.kind == "scl":
            record["classes"] = list(self.policy.scl_classes)
        elif self.kind == "classi":
            record["layers"] = list(self.policy.classi_layers)
        elif self._computed is not None:
            record |= self._computed.record()
        record["max_masked_fraction"] = self.policy.max_masked_fraction
        return record

    def close(self) -> None:
        """Release the mask reader (the scene closes the underlying file)."""
        self._reader = None
        self._computed = None

    def __enter__(self) -> CloudMask:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
