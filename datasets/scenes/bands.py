"""Sentinel-2 MSI band names, native resolutions, and how band names appear in file names."""

from __future__ import annotations

import re
from collections.abc import Sequence

S2_BANDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
"""All 13 MSI bands in ESA order."""

DEFAULT_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
"""Blue, green, red, near-infrared: the four 10 m bands."""

NATIVE_RESOLUTION: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
"""Native ground sampling distance of each band, in metres."""

# The band token ends the file stem and is preceded by a separator or nothing, so "B8A" never
# matches "B08" and "xB02" is not a band; ESA L2A appends the resolution as "_10m".
_BAND_IN_STEM = re.compile(r"(?:^|[_\-.])(B(?:0[1-9]|1[0-2]|8A))(?:_(\d{2})m)?$", re.IGNORECASE)
_SHORT_BAND = re.compile(r"^B([1-9])$", re.IGNORECASE)


def band_in_filename(name: str) -> tuple[str, int | None] | None:
    """Parse the band (and optional ``_NNm`` resolution suffix) from a file name.

    Args:
        name: A base name such as ``T18SVG_20200101T000000_B8A.jp2``, ``s2_B02.jp2``,
            ``B02.tif`` or ``T33UUP_20200101T000000_B02_20m.jp2``.

    Returns:
        ``(band, resolution_m)`` with the canonical band name (``"B8A"``) and the resolution
        from an ``_NNm`` suffix (``None`` without one), or ``None`` when the name names no band.
    """
    stem = name.rsplit(".", 1)[0] if "." in name else name
    match = _BAND_IN_STEM.search(stem)
    if match is None:
        return None
    resolution = int(match.group(2)) if match.group(2) else None
    return match.group(1).upper(), resolution


def canonical_band(label: str) -> str | None:
    """Canonical band name for a label such as ``"B02"``, ``"b8a"`` or ``"B2"``, else ``None``."""
    text = label.strip().upper()
    short = _SHORT_BAND.match(text)
    if short:
        text = f"B0{short.group(1)}"
    return text if text in NATIVE_RESOLUTION else None


def check_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """Validate requested band names and return them canonicalised, in the given order.

    Raises:
        ValueError: A name is not a Sentinel-2 band, a band is repeated, or none is given.
    """
    if isinstance(bands, str):
        raise ValueError(f"bands must be a sequence of names such as ('B02', 'B03'), not {bands!r}")
    canonical: list[str] = []
    for label in bands:
        band = canonical_band(label)
        if band is None:
            raise ValueError(
                f"Unknown Sentinel-2 band {label!r}; choose from {', '.join(S2_BANDS)}."
            )
        if band in canonical:
            raise ValueError(f"Band {band} is requested twice in {tuple(bands)}.")
        canonical.append(band)
    if not canonical:
        raise ValueError(f"No bands requested; pass e.g. bands={DEFAULT_BANDS}.")
    return tuple(canonical)
