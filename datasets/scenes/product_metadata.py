"""The radiometry a Sentinel-2 product declares in its metadata (``MTD_MSIL1C.xml``,
``MTD_MSIL2A.xml``).

Element names are ESA's (Sentinel-2 Products Specification Document, PSD 14.x), as they appear
in real products::

    Level-1C  General_Info/Product_Info/PROCESSING_BASELINE             04.00
              General_Info/Product_Image_Characteristics/QUANTIFICATION_VALUE      10000
              .../Radiometric_Offset_List/RADIO_ADD_OFFSET[@band_id]   -1000 (baseline ≥ 04.00)
    Level-2A  .../QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE             10000
              .../BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET[@band_id]  -1000 (baseline ≥ 04.00)

``band_id`` counts the 13 bands in ESA order (0 = B01 … 7 = B08, 8 = B8A, 9 = B09 … 12 = B12),
as ``Spectral_Information[@bandId, @physicalBand]`` of the same file confirms.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date

from datasets.errors import HarmonisationError
from datasets.harmonise import ProductMetadata, baseline_tuple
from datasets.scenes.bands import S2_BANDS, canonical_band

METADATA_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
"""File names of the product metadata at the root of a ``.SAFE`` product."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _elements(root: ET.Element, name: str) -> Iterator[ET.Element]:
    return (element for element in root.iter() if _local(element.tag) == name)


def _text(root: ET.Element, name: str) -> str | None:
    element = next(_elements(root, name), None)
    return element.text.strip() if element is not None and element.text else None


def _band_ids(root: ET.Element) -> dict[str, str]:
    """``band_id`` → band name, from ``Spectral_Information`` when the file has it."""
    named = {
        element.get("bandId", ""): canonical_band(element.get("physicalBand", ""))
        for element in _elements(root, "Spectral_Information")
    }
    ids = {key: band for key, band in named.items() if key and band}
    return ids or {str(index): band for index, band in enumerate(S2_BANDS)}


def parse_product_metadata(xml: bytes, name: str) -> ProductMetadata:
    """Read the radiometry of a Level-1C or Level-2A product metadata file.

    Args:
        xml: The file's bytes.
        name: Where it was read from, for messages.

    Returns:
        The declared baseline, quantification and per-band offsets.

    Raises:
        HarmonisationError: The file is not XML, not a Level-1C/2A product metadata file, lacks
            the baseline or quantification, or declares baseline 04.00 or later without
            offsets.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise _unreadable(name, f"it is not valid XML ({err})") from None
    kind = _local(root.tag)
    level = "L1C" if "Level-1C" in kind else "L2A" if "Level-2A" in kind else None
    if level is None:
        raise _unreadable(name, f"its root element is {kind}, not a Level-1C/2A user product")
    baseline = _text(root, "PROCESSING_BASELINE")
    version = baseline_tuple(baseline or "")
    if baseline is None or version is None:
        raise _unreadable(name, "it has no PROCESSING_BASELINE")
    quantification_tag = "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE"
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    try:
        quantification = float(_text(root, quantification_tag) or "nan")
        ids = _band_ids(root)
        offsets = {
            ids[element.get("band_id", "")]: float((element.text or "").strip())
            for element in _elements(root, offset_tag)
            if element.get("band_id", "") in ids
        }
    except ValueError as err:
        why = f"a {quantification_tag} or {offset_tag} is not a number ({err})"
        raise _unreadable(name, why) from None
    if not quantification > 0:
        raise _unreadable(name, f"it has no positive {quantification_tag}")
    if version >= (4, 0) and not offsets:
        raise _unreadable(
            name, f"it declares processing baseline {baseline} but no {offset_tag} values"
        )
    start = _text(root, "PRODUCT_START_TIME")
    sensing = _parse_date(start[:10]) if start else None
    return ProductMetadata(name, level, baseline, quantification, offsets, sensing)


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _unreadable(name: str, why: str) -> HarmonisationError:
    return HarmonisationError(
        f"Product metadata {name} is unreadable: {why}. Its offset and quantification decide "
        "the reflectance of every pixel, so the scene is refused; re-download the product, or "
        "pass harmonisation={'offset': ..., 'quantification': ...} to state them yourself."
    )
