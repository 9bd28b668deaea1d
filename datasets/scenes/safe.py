"""ESA ``.SAFE`` products: Level-1C and Level-2A, one granule (tile) each.

Layouts read::

    S2A_MSIL1C_...SAFE/GRANULE/L1C_T33UUP_.../IMG_DATA/T33UUP_20200101T100031_B02.jp2
    S2A_MSIL2A_...SAFE/GRANULE/L2A_T33UUP_.../IMG_DATA/R10m/T33UUP_20200101T100031_B02_10m.jp2
                                                       R20m/..._B02_20m.jp2, R60m/...

A product is recognised by its ``GRANULE`` folder, whatever the product folder is called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from datasets.errors import SceneReadError
from datasets.scenes.band_folder import BandFile, band_files, select_band_files
from datasets.scenes.base import BandSource
from datasets.scenes.storage import Entry, SceneStore

_RESOLUTION_DIR = re.compile(r"^R(\d+)m$")


def is_safe(entries: Sequence[Entry]) -> bool:
    """True when a folder listing is that of a ``.SAFE`` product (it has ``GRANULE/``)."""
    return any(entry.is_dir and entry.name == "GRANULE" for entry in entries)


def safe_scene_id(uri: str) -> str:
    """Product name without the ``.SAFE`` suffix."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".SAFE")] if name.upper().endswith(".SAFE") else name


def _listdir(store: SceneStore, uri: str, product: str) -> list[Entry]:
    try:
        return store.listdir(uri)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise SceneReadError(
            f"{product} looks like a .SAFE product but {uri} is missing; the product is "
            "incomplete (re-download or re-extract it)."
        ) from err


def safe_sources(
    store: SceneStore, uri: str, bands: Sequence[str], resolution: float | None
) -> list[BandSource]:
    """Sources for ``bands`` in the single granule of a ``.SAFE`` product.

    For Level-2A, a band present in several ``R<res>m`` folders is taken at ``resolution`` when
    available, else at its finest.

    Raises:
        SceneReadError: The product has no or several granules, no ``IMG_DATA``, or lacks a
            requested band.
    """
    granules = [e for e in _listdir(store, store.join(uri, "GRANULE"), uri) if e.is_dir]
    if len(granules) != 1:
        names = ", ".join(g.name for g in granules) or "none"
        raise SceneReadError(
            f"{uri} holds {len(granules)} granules ({names}); a scene is one granule. For "
            "multi-granule products open each GRANULE/<name>/IMG_DATA folder separately."
        )
    img_data = store.join(granules[0].uri, "IMG_DATA")
    entries = _listdir(store, img_data, uri)
    files: list[BandFile] = band_files(entries)
    for entry in entries:
        match = _RESOLUTION_DIR.match(entry.name)
        if entry.is_dir and match:
            files += band_files(_listdir(store, entry.uri, uri), resolution=int(match.group(1)))
    if not files:
        raise SceneReadError(
            f"{img_data} holds no band files (*_B02.jp2 or R10m/*_B02_10m.jp2); the product is "
            "incomplete (re-download or re-extract it)."
        )
    return select_band_files(files, bands, uri, resolution)
