"""GDAL's raster block cache as the running process sees it: its cap and what it holds now."""

import ctypes
from functools import cache

import rasterio  # noqa: F401  (loads the GDAL library the probe reads)


@cache
def _gdal() -> ctypes.CDLL:
    """The GDAL library rasterio loaded into this process (a wheel's copy or the system's)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgdal" in line.rsplit("/", 1)[-1]}
    (path,) = paths
    lib = ctypes.CDLL(path)
    for name in ("GDALGetCacheUsed64", "GDALGetCacheMax64"):
        getattr(lib, name).restype = ctypes.c_int64
    return lib


def cache_used() -> int:
    """Bytes of decoded raster blocks GDAL holds right now."""
    return int(_gdal().GDALGetCacheUsed64())


def cache_max() -> int:
    """GDAL's block-cache cap in bytes right now."""
    return int(_gdal().GDALGetCacheMax64())
