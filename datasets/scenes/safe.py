"""ESA ``.SAFE`` products: Level-1C and Level-2A, one granule (tile) each.

Layouts read::

    S2A_MSIL1C_...SAFE/GRANULE/L1C_T33UUP_.../IMG_DATA/T33UUP_20200101T100031_B02.jp2
    S2A_MSIL2A_...SAFE/GRANULE/L2A_T33UUP_.../IMG_DATA/R10m/T33UUP_20200101T100031_B02_10m.jp2
                                                       R20m/..._B02_20m.jp2, R60m/...

A product is recognised by its ``GRANULE`` folder, whatever the product folder is called. Its
metadata file at the root (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) tells the radiometric
offset (see :mod:`datasets.harmonise`); the cloud masks are the L2A Scene Classification Layer
(``IMG_DATA/R20m/*_SCL_20m.jp2``, else R60m) and the L1C classification mask of baseline 04.00
and later (``QI_DATA/MSK_CLASSI_B00.jp2``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from datasets.errors import HarmonisationError, SceneReadError
from datasets.harmonise import ProductMetadata, RadiometryHints
from datasets.scenes.band_folder import BandFile, band_files, mask_files, select_band_files
from datasets.scenes.layout import Layout
from datasets.scenes.product_metadata import METADATA_NAMES, parse_product_metadata
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


def product_metadata(
    store: SceneStore, uri: str, entries: Sequence[Entry]
) -> ProductMetadata | HarmonisationError:
    """The parsed metadata file at the root of the product ``uri``, or the error saying why it
    cannot be used (missing, unreadable); :func:`datasets.harmonise.decide` raises it unless the
    user states the radiometry."""
    found = [entry for entry in entries if entry.name in METADATA_NAMES]
    if not found:
        return HarmonisationError(
            f"{uri} has no product metadata ({' or '.join(METADATA_NAMES)}), which states the "
            "radiometric offset of its pixels; the product is incomplete: re-download it, or "
            "pass harmonisation={'offset': ..., 'quantification': ...} to state them yourself."
        )
    name = f"{safe_scene_id(uri)}.SAFE/{found[0].name}"
    try:
        return parse_product_metadata(store.read_bytes(found[0].uri), name)
    except HarmonisationError as err:
        return err


def safe_layout(
    store: SceneStore,
    uri: str,
    bands: Sequence[str],
    resolution: float | None,
    scene_id: str | None = None,
) -> Layout:
    """Sources for ``bands`` in the single granule of a ``.SAFE`` product, its metadata and its
    cloud masks.

    For Level-2A, a band present in several ``R<res>m`` folders is taken at ``resolution`` when
    available, else at its finest.

    Args:
        store: Where the product lives (a folder, an S3 prefix or a zip archive).
        uri: The product folder in ``store``.
        bands: Requested bands.
        resolution: Preferred resolution (m) for bands present at several.
        scene_id: The scene's id; default: the product folder's name without ``.SAFE``.

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
    masks = mask_files(entries)
    for entry in entries:
        match = _RESOLUTION_DIR.match(entry.name)
        if entry.is_dir and match:
            inner = _listdir(store, entry.uri, uri)
            files += band_files(inner, resolution=int(match.group(1)))
            # the 20 m SCL is the native one; R60m holds a resampled copy
            for kind, found in mask_files(inner).items():
                if kind not in masks or match.group(1) == "20":
                    masks[kind] = found
    if not files:
        raise SceneReadError(
            f"{img_data} holds no band files (*_B02.jp2 or R10m/*_B02_10m.jp2); the product is "
            "incomplete (re-download or re-extract it)."
        )
    granule = {entry.name: entry for entry in store.listdir(granules[0].uri)}
    if "QI_DATA" in granule and granule["QI_DATA"].is_dir:
        masks = mask_files(store.listdir(granule["QI_DATA"].uri)) | masks
    return Layout(
        scene_id or safe_scene_id(uri),
        select_band_files(files, bands, uri, resolution),
        RadiometryHints(
            metadata=product_metadata(store, uri, store.listdir(uri)),
            names=[safe_scene_id(uri)],
        ),
        masks,
    )
