"""A cloud mask computed from a Level-1C scene's top-of-atmosphere reflectance by s2cloudless.

Sentinel Hub's ``s2cloudless`` classifies each pixel from ten L1C bands (B01, B02, B04, B05,
B08, B8A, B09, B10, B11, B12, as reflectance = harmonised DN / 10000); its LightGBM model ships
inside the package, so nothing is downloaded. Sentinel Hub trained it on 10 m pixels but runs
it on 160 m pixels (its precomputed CLM/CLP layers are 160 m), so it runs here on the ten bands
read harmonised and averaged onto a 160 m grid with the scene's upper-left corner (a 10980²
tile becomes 686², computed once per scene). The probability is post-processed as in Sentinel
Hub's published examples (``average_over=4``, ``dilation_size=2``); s2cloudless applies these
disk radii in pixels of the grid it is given, 640 m and 320 m here. Each pixel of the scene's
grid then takes the value of the 160 m pixel its centre lies in (nearest), window by window
like the product's own masks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from datasets.errors import MaskError, SceneFetchError, SceneReadError
from datasets.scenes import Scene

S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
"""The bands ``S2PixelCloudDetector(all_bands=False)`` reads, in its order."""
RESOLUTION = 160.0
"""Pixel size (m) the detector runs at (Sentinel Hub's CLM/CLP resolution)."""
AVERAGE_OVER = 4
"""Radius (pixels at :data:`RESOLUTION`) of the disk the probability is averaged over."""
DILATION_SIZE = 2
"""Radius (pixels at :data:`RESOLUTION`) of the disk the mask is dilated by."""
# a product, granule or STAC Item name of Level 2A: S2B_MSIL2A_…, L2A_T33UUP_…, S2B_33UUP_…_L2A
_LEVEL_2A = re.compile(r"(?:^|[_.-])(?:MSI)?L2A(?:[_.-]|$)", re.IGNORECASE)
_FIX = "or tile with masks={'source': 'auto'} (the product's own mask) or {'source': 'none'}"


class SceneOpener(Protocol):
    """Opens other bands of the scene being tiled, with the same storage and harmonisation."""

    def __call__(
        self, bands: Sequence[str], *, resolution: float | None = ..., resampling: str | None = ...
    ) -> Scene: ...


class S2CloudlessMask:
    """s2cloudless's cloud mask of ``scene``, on ``scene``'s grid.

    Args:
        scene: The scene being tiled (any bands); patches are cut on its grid.
        reopen: Opens :data:`S2CLOUDLESS_BANDS` of the same product at :data:`RESOLUTION`.
        threshold: Cloud probability above which a pixel is cloud.

    Raises:
        MaskError: The scene is Level-2A (s2cloudless needs top-of-atmosphere reflectance),
            lacks one of :data:`S2CLOUDLESS_BANDS`, or the ``s2cloudless`` package is not
            installed; the message says what to do.
    """

    def __init__(self, scene: Scene, reopen: SceneOpener, threshold: float) -> None:
        if "scl" in scene.masks or _LEVEL_2A.search(scene.scene_id):
            raise MaskError(
                f"masks.source='s2cloudless' needs Level-1C top-of-atmosphere reflectance but "
                f"{scene.uri} is a Level-2A product; tile its Level-1C product instead, {_FIX}."
            )
        detector = _detector(threshold)
        self.threshold = threshold
        self.version = metadata.version("s2cloudless")
        try:
            coarse = reopen(S2CLOUDLESS_BANDS, resolution=RESOLUTION, resampling="average")
        except SceneFetchError:
            raise
        except SceneReadError as err:
            missing = _missing_bands(reopen)
            what = f"lacks band(s) {', '.join(missing)}" if missing else f"cannot be read: {err}"
            raise MaskError(
                f"masks.source='s2cloudless' needs bands {', '.join(S2CLOUDLESS_BANDS)} of "
                f"{scene.uri}, which {what}; use a complete Level-1C product, {_FIX}."
            ) from err
        with coarse:
            reflectance = coarse.read().astype(np.float32) / 10000
            transform = coarse.transform
        # (bands, h, w) -> (1, h, w, bands), the detector's layout
        probability = detector.get_cloud_probability_maps(reflectance.transpose(1, 2, 0)[None])
        # a pixel missing in any band is nodata, dropped (or not) by max_nodata_fraction
        probability[0][np.any(reflectance == 0, axis=0)] = 0
        self._mask = detector.get_mask_from_prob(probability)[0].astype(bool)
        to_coarse = ~transform * scene.transform
        cols = np.floor(to_coarse.a * (np.arange(scene.width) + 0.5) + to_coarse.c)
        rows = np.floor(to_coarse.e * (np.arange(scene.height) + 0.5) + to_coarse.f)
        # the 160 m grid drops the scene's last partial pixel: edge pixels take the nearest one
        self._cols = np.clip(cols.astype(np.int64), 0, self._mask.shape[1] - 1)
        self._rows = np.clip(rows.astype(np.int64), 0, self._mask.shape[0] - 1)

    def read(self, window: Window) -> np.ndarray:
        """``(h, w)`` bool, True where s2cloudless finds cloud, for a window of the scene grid."""
        row, col = int(window.row_off), int(window.col_off)
        rows = self._rows[row : row + int(window.height)]
        cols = self._cols[col : col + int(window.width)]
        return self._mask[np.ix_(rows, cols)]

    def record(self) -> dict[str, Any]:
        """JSON-ready description of how the mask was computed."""
        return {
            "package": f"s2cloudless {self.version}",
            "bands": list(S2CLOUDLESS_BANDS),
            "resolution": RESOLUTION,
            "threshold": self.threshold,
            "average_over": AVERAGE_OVER,
            "dilation_size": DILATION_SIZE,
        }


def _detector(threshold: float) -> Any:
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError as err:
        raise MaskError(
            f"masks.source='s2cloudless' needs the s2cloudless package ({err}); install it with "
            f"`pip install 's2-srgan[s2cloudless]'`, {_FIX}."
        ) from err
    return S2PixelCloudDetector(
        threshold=threshold, average_over=AVERAGE_OVER, dilation_size=DILATION_SIZE
    )


def _missing_bands(reopen: SceneOpener) -> list[str]:
    """The bands of :data:`S2CLOUDLESS_BANDS` the product has no file for."""
    missing = []
    for band in S2CLOUDLESS_BANDS:
        try:
            reopen((band,), resolution=None, resampling=None).close()
        except SceneFetchError:
            raise
        except SceneReadError:
            missing.append(band)
    return missing
