"""Sentinel-2 scene readers: band folders, ``.SAFE`` products and multi-band rasters.

Every layout is opened with :func:`open_scene` (local paths or ``s3://``) and yields a
:class:`Scene`: the selected bands on one grid, read window by window as uint16 ×10000.
"""

from datasets.scenes.bands import DEFAULT_BANDS, NATIVE_RESOLUTION, S2_BANDS
from datasets.scenes.base import BandSource, Scene
from datasets.scenes.block_cache import GDAL_CACHE_BYTES, bounded_block_cache
from datasets.scenes.detect import find_scenes, open_scene
from datasets.scenes.grid import RESAMPLING

__all__ = [
    "DEFAULT_BANDS",
    "GDAL_CACHE_BYTES",
    "NATIVE_RESOLUTION",
    "RESAMPLING",
    "S2_BANDS",
    "BandSource",
    "Scene",
    "bounded_block_cache",
    "find_scenes",
    "open_scene",
]
