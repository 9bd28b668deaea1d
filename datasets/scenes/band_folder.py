"""Scenes stored as one raster file per band in a folder (``B02.tif``, ``*_B8A.jp2``, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datasets.errors import SceneReadError
from datasets.harmonise import RadiometryHints
from datasets.scenes.bands import band_in_filename
from datasets.scenes.base import BandSource
from datasets.scenes.layout import Layout
from datasets.scenes.storage import Entry

SIDECAR_SUFFIXES = (".xml", ".json", ".txt", ".md", ".html", ".gml", ".ovr", ".aux", ".msk")
"""Names ending like this describe a raster but hold no pixels; they are never band files."""


# Mask rasters by name: ``T33UUP_20230101T100031_SCL_20m.jp2``, ``SCL.tif`` (STAC exports),
# ``MSK_CLASSI_B00.jp2``.
_MASK_NAMES = {
    "scl": re.compile(r"(?:^|[_\-.])SCL(?:_\d{2}m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE),
    "classi": re.compile(r"^MSK_CLASSI_B00\.(?:tif|tiff|jp2)$", re.IGNORECASE),
}


@dataclass(frozen=True)
class BandFile:
    """A file whose name names a band, with the resolution its name or folder states (if any)."""

    band: str
    uri: str
    resolution: int | None


def band_files(entries: Iterable[Entry], resolution: int | None = None) -> list[BandFile]:
    """The band files among folder ``entries``.

    Args:
        entries: A folder listing.
        resolution: Resolution (m) implied by the folder (e.g. ``R20m``) for names without an
            ``_NNm`` suffix.
    """
    found = []
    for entry in entries:
        if entry.is_dir or entry.name.lower().endswith(SIDECAR_SUFFIXES):
            continue
        parsed = band_in_filename(entry.name)
        if parsed is not None:
            band, stated = parsed
            found.append(BandFile(band, entry.uri, stated if stated is not None else resolution))
    return found


def mask_files(entries: Iterable[Entry]) -> dict[str, str]:
    """Mask kind (``"scl"``, ``"classi"``) → URI, for the mask rasters among ``entries``."""
    found: dict[str, str] = {}
    for entry in entries:
        for kind, pattern in _MASK_NAMES.items():
            if not entry.is_dir and pattern.search(entry.name) and kind not in found:
                found[kind] = entry.uri
    return found


def select_band_files(
    files: Sequence[BandFile], bands: Sequence[str], where: str, resolution: float | None
) -> list[BandSource]:
    """Pick one file per requested band.

    When a band has several files (L2A products hold B02 at 10, 20 and 60 m) the one at
    ``resolution`` wins, else the finest.

    Raises:
        SceneReadError: A band has no file (the message lists the bands found), or several
            files that neither their names nor ``resolution`` tell apart.
    """
    by_band: dict[str, list[BandFile]] = {}
    for file in files:
        by_band.setdefault(file.band, []).append(file)
    missing = [band for band in bands if band not in by_band]
    if missing:
        found = ", ".join(sorted(by_band)) or "none"
        raise SceneReadError(
            f"Band(s) {', '.join(missing)} missing in {where}; bands found: {found}. Choose "
            "bands from those found, or add the missing band files."
        )
    return [BandSource(band, _pick(by_band[band], band, where, resolution).uri) for band in bands]


def _pick(candidates: list[BandFile], band: str, where: str, resolution: float | None) -> BandFile:
    if len(candidates) == 1:
        return candidates[0]
    if resolution is not None:
        exact = [c for c in candidates if c.resolution == resolution]
        if len(exact) == 1:
            return exact[0]
    stated = [c for c in candidates if c.resolution is not None]
    if len(stated) == len(candidates) and len({c.resolution for c in stated}) == len(stated):
        return min(stated, key=lambda c: c.resolution or 0)
    names = ", ".join(c.uri for c in candidates)
    raise SceneReadError(
        f"{band} is ambiguous in {where}: several files name it ({names}). Keep one file per "
        "band, or mark them by resolution (e.g. *_B02_10m.jp2, *_B02_20m.jp2)."
    )


def band_folder_layout(
    entries: Sequence[Entry],
    bands: Sequence[str],
    where: str,
    resolution: float | None,
    scene_id: str,
    hints: RadiometryHints,
) -> Layout:
    """Sources for ``bands`` in a folder of per-band files, with the folder's mask rasters.

    Args:
        entries: The folder's listing.
        bands: Requested bands.
        where: The folder, for messages.
        resolution: Preferred resolution (m) for bands present at several.
        scene_id: The scene's id.
        hints: Radiometry hints found around the folder; the band file names are added.

    Raises:
        SceneReadError: No band files at all, a requested band is missing, or ambiguous.
    """
    files = band_files(entries)
    if not files:
        names = ", ".join(entry.name for entry in entries[:10]) or "nothing"
        raise SceneReadError(
            f"No Sentinel-2 scene in {where}: no file in it is named after a band (like B02.tif "
            f"or T33UUP_20200101T000000_B02.jp2) and it is not a .SAFE product (it holds: "
            f"{names}). Point to a band folder, a .SAFE product or a multi-band GeoTIFF."
        )
    sources = select_band_files(files, bands, where, resolution)
    file_names = [source.uri.rsplit("/", 1)[-1] for source in sources]
    return Layout(
        scene_id,
        sources,
        RadiometryHints(hints.metadata, hints.item, [*hints.names, *file_names]),
        mask_files(entries),
    )
