"""Product metadata files (``MTD_MSIL1C.xml``, ``MTD_MSIL2A.xml``) with ESA's element names.

Where each element name and its place come from:

- ``n1:Level-1C_User_Product`` / ``n1:Level-2A_User_Product`` roots with the PSD-14 namespaces,
  ``General_Info/Product_Info`` (``PRODUCT_START_TIME``, ``PRODUCT_URI``, ``PROCESSING_LEVEL``,
  ``PRODUCT_TYPE``, ``PROCESSING_BASELINE``) and ``General_Info/Product_Image_Characteristics``
  (``Special_Values``, ``QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE``,
  ``BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET[@band_id]``,
  ``Spectral_Information_List/Spectral_Information[@bandId, @physicalBand]``): the real
  baseline-04.00 product ``S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE``
  in the test data of stactools-packages/sentinel2 (``tests/data-files/…/MTD_MSIL2A.xml``).
- Level-1C ``QUANTIFICATION_VALUE`` and ``Radiometric_Offset_List/RADIO_ADD_OFFSET[@band_id]``
  in ``Product_Image_Characteristics``: ESA's Sentinel-2 Products Specification Document
  (PSD 14.9) and the L1C readers that parse real products (e.g. the ``n1:General_Info`` /
  ``Product_Image_Characteristics`` paths used by open L1C atmospheric-correction tools).
- ``band_id`` 0–12 in ESA band order with B8A as 8, as ``Spectral_Information`` of the real
  file pairs ``bandId`` with ``physicalBand``.
"""

from __future__ import annotations

BANDS_ESA_ORDER = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)  # fmt: skip
_NAMESPACE = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level}.xsd"


def product_metadata_xml(
    level: str,
    product_uri: str,
    baseline: str,
    start_time: str,
    offset: int | None = -1000,
    quantification: int = 10000,
) -> str:
    """The text of a product metadata file.

    Args:
        level: ``"1C"`` or ``"2A"``.
        product_uri: The product's name (``….SAFE``).
        baseline: Processing baseline, e.g. ``"05.09"``.
        start_time: ``PRODUCT_START_TIME``, e.g. ``"2023-06-15T15:56:19.024Z"``.
        offset: The offset of every band, or ``None`` for no offset list (baselines < 04.00).
        quantification: The quantification value.
    """
    l1c = level == "1C"
    if l1c:
        quantification_xml = (
            f'<QUANTIFICATION_VALUE unit="none">{quantification}</QUANTIFICATION_VALUE>'
        )
        offsets_tag, offset_tag = "Radiometric_Offset_List", "RADIO_ADD_OFFSET"
    else:
        quantification_xml = (
            "<QUANTIFICATION_VALUES_LIST>"
            f'<BOA_QUANTIFICATION_VALUE unit="none">{quantification}</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
            '<WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>'
            "</QUANTIFICATION_VALUES_LIST>"
        )
        offsets_tag, offset_tag = "BOA_ADD_OFFSET_VALUES_LIST", "BOA_ADD_OFFSET"
    offsets_xml = ""
    if offset is not None:
        rows = "".join(
            f'<{offset_tag} band_id="{i}">{offset}</{offset_tag}>'
            for i in range(len(BANDS_ESA_ORDER))
        )
        offsets_xml = f"<{offsets_tag}>{rows}</{offsets_tag}>"
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{band}"><RESOLUTION>10</RESOLUTION>'
        "</Spectral_Information>"
        for i, band in enumerate(BANDS_ESA_ORDER)
    )
    namespace = _NAMESPACE.format(level=level)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<n1:Level-{level}_User_Product xmlns:n1="{namespace}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<n1:General_Info><Product_Info>"
        f"<PRODUCT_START_TIME>{start_time}</PRODUCT_START_TIME>"
        f"<PRODUCT_URI>{product_uri}</PRODUCT_URI>"
        f"<PROCESSING_LEVEL>Level-{level}</PROCESSING_LEVEL>"
        f"<PRODUCT_TYPE>S2MSI{level}</PRODUCT_TYPE>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        "</Product_Info><Product_Image_Characteristics>"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>"
        "<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>"
        f"{quantification_xml}{offsets_xml}"
        f"<Spectral_Information_List>{spectral}</Spectral_Information_List>"
        "</Product_Image_Characteristics></n1:General_Info>"
        f"</n1:Level-{level}_User_Product>\n"
    )
