"""The harmonisation rule on its own: arithmetic, clamping, where the decision comes from."""

from __future__ import annotations

import numpy as np
import pytest
from data.s2_products.metadata import product_metadata_xml

from datasets.errors import HarmonisationError
from datasets.harmonise import (
    Harmonisation,
    HarmonisationParam,
    ItemRadiometry,
    RadiometryHints,
    decide,
    name_evidence,
)
from datasets.scenes.product_metadata import parse_product_metadata

BANDS = ("B02", "B08")
ESA = Harmonisation("product-metadata", "test", {"B02": -1000.0, "B08": -1000.0})


def test_offset_is_removed_and_nodata_kept() -> None:
    dn = np.array([[[0, 1000, 1001, 2534, 65535]], [[0, 1, 999, 11000, 5000]]], dtype=np.uint16)
    values, clamped = ESA.apply(dn, BANDS, None)
    assert values.dtype == np.uint16
    assert values.tolist() == [[[0, 1, 1, 1534, 64535]], [[0, 1, 1, 10000, 4000]]]
    # DN 1000 (reflectance 0), DN 1 and DN 999 (negative) are clamped; DN 0 is nodata
    assert clamped == 3
    assert ESA.count_clamped(dn, BANDS, None) == 3


def test_declared_nodata_becomes_zero() -> None:
    dn = np.array([[[65535, 3000]]], dtype=np.uint16)
    values, _ = ESA.apply(dn, ("B02",), 65535)
    assert values.tolist() == [[[0, 2000]]]


def test_quantification_rescales_to_10000() -> None:
    eight_bit = Harmonisation("parameter", "test", {}, quantification=255)
    values, clamped = eight_bit.apply(np.array([[[0, 255, 51]]], dtype=np.uint8), ("B02",), None)
    assert values.tolist() == [[[0, 10000, 2000]]] and clamped == 0


def test_identity_returns_the_digital_numbers_untouched() -> None:
    dn = np.array([[[0, 5, 70]]], dtype=np.int16)
    identity = Harmonisation("undated", "test")
    values, clamped = identity.apply(dn, ("B02",), None)
    assert values is dn and clamped == 0


def test_restore_puts_the_offset_back() -> None:
    assert ESA.restore(np.array([[[0.0, 1534.0]]]), ("B02",)).tolist() == [[[0.0, 2534.0]]]


def test_restore_undoes_a_quantification_too() -> None:
    eight_bit = Harmonisation("parameter", "test", {"B02": -10.0}, quantification=255)
    stored = np.array([[[0.0, 10000.0, 2000.0]]])
    assert eight_bit.restore(stored, ("B02",)).tolist() == [[[0.0, 265.0, 61.0]]]


def test_record_names_what_was_applied() -> None:
    assert ESA.to_record(BANDS) == {
        "source": "product-metadata",
        "detail": "test",
        "baseline": None,
        "quantification": 10000.0,
        "offsets": {"B02": -1000.0, "B08": -1000.0},
    }


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["S2B_MSIL1C_20180101T1_N0500_R054_T18SVG_20230101T174012"], ("2023-01-01", "05.00")),
        (["T33UUP_20211231T100031_B02.jp2"], ("2021-12-31", None)),
        (["S2A_MSIL2A_20170613T101031_0_45"], ("2017-06-13", None)),
        (["B02.tif", "crop_scene"], (None, None)),
        (["T33UUP_20231399T000000"], (None, None)),  # not a date
    ],
)
def test_names_tell_dates_and_baselines(names: list[str], expected: tuple) -> None:
    dated, baseline = name_evidence(names)
    assert (str(dated) if dated else None, baseline) == expected


def _metadata(level: str = "2A", baseline: str = "05.10", offset: int | None = -1000):
    xml = product_metadata_xml(level, "P.SAFE", baseline, "2023-06-15T10:00:00Z", offset)
    return parse_product_metadata(xml.encode(), "P.SAFE/MTD.xml")


def test_product_metadata_is_read_with_esa_band_ids() -> None:
    for level in ("1C", "2A"):
        meta = _metadata(level)
        assert meta.level == f"L{level}" and meta.baseline == "05.10"
        assert meta.quantification == 10000 and len(meta.offsets) == 13
        assert meta.offsets["B8A"] == -1000 and str(meta.sensing_date) == "2023-06-15"


@pytest.mark.parametrize(
    ("xml", "says"),
    [
        (b"<not-xml", "not valid XML"),
        (b"<metadata/>", "not a Level-1C/2A user product"),
        (
            product_metadata_xml("1C", "P", "04.00", "2023-01-01", None).encode(),
            "no RADIO_ADD_OFFSET",
        ),
        (
            product_metadata_xml("2A", "P", "04.00", "2023-01-01", None).encode(),
            "no BOA_ADD_OFFSET",
        ),
    ],
    ids=["not-xml", "foreign", "l1c-without-offsets", "l2a-without-offsets"],
)
def test_unreadable_metadata_is_refused_with_the_parameter_to_set(xml: bytes, says: str) -> None:
    with pytest.raises(HarmonisationError, match=says) as caught:
        parse_product_metadata(xml, "P.SAFE/MTD_MSIL1C.xml")
    assert "harmonisation=" in str(caught.value) and "P.SAFE/MTD_MSIL1C.xml" in str(caught.value)


def test_product_metadata_wins_over_the_item_and_the_parameter() -> None:
    item = ItemRadiometry("item", offset_applied=True)
    hints = RadiometryHints(metadata=_metadata(), item=item, names=["x_20230101"])
    chosen = decide(hints, HarmonisationParam(offset=0), "scene", BANDS)
    assert chosen.source == "product-metadata" and chosen.offset("B02") == -1000


def test_unreadable_metadata_without_parameter_fails_and_with_one_uses_it() -> None:
    broken = HarmonisationError("broken metadata")
    with pytest.raises(HarmonisationError, match="broken metadata"):
        decide(RadiometryHints(metadata=broken), None, "scene", BANDS)
    chosen = decide(RadiometryHints(metadata=broken), HarmonisationParam(offset=-1000), "s", BANDS)
    assert chosen.source == "parameter" and chosen.offset("B08") == -1000


@pytest.mark.parametrize(
    ("item", "offset", "detail"),
    [
        (ItemRadiometry("i", offset_applied=True, baseline="05.09"), 0, "boa_offset_applied"),
        (
            ItemRadiometry("i", band_scaling={b: (0.0001, -0.1) for b in BANDS}),
            -1000,
            "raster:bands",
        ),
        (ItemRadiometry("i", baseline="05.09"), -1000, "s2:processing_baseline 05.09"),
        (ItemRadiometry("i", baseline="04.00"), -1000, "s2:processing_baseline 04.00"),
        (ItemRadiometry("i", baseline="03.01"), 0, "s2:processing_baseline 03.01"),
    ],
    ids=["flag", "raster-bands", "baseline-after", "baseline-04.00", "baseline-before"],
)
def test_stac_item_radiometry(item: ItemRadiometry, offset: float, detail: str) -> None:
    chosen = decide(RadiometryHints(item=item), HarmonisationParam(offset=-7), "s", BANDS)
    assert chosen.source == "stac-item" and detail in chosen.detail
    assert chosen.offset("B02") == pytest.approx(offset) and chosen.quantification == 10000
    assert chosen.baseline == item.baseline  # recorded with the scene


def test_an_items_raster_bands_and_flag_keep_its_baseline() -> None:
    scaling = {b: (0.0001, -0.1) for b in BANDS}
    for item in (
        ItemRadiometry("i", offset_applied=True, baseline="05.09"),
        ItemRadiometry("i", baseline="05.09", band_scaling=scaling),
    ):
        assert decide(RadiometryHints(item=item), None, "s", BANDS).baseline == "05.09"


def test_a_parameter_shadowed_by_metadata_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    hints = RadiometryHints(metadata=_metadata())
    with caplog.at_level("WARNING", logger="datasets.harmonise"):
        decide(hints, None, "the/scene", BANDS)
        assert caplog.records == []
        decide(hints, HarmonisationParam(offset=0), "the/scene", BANDS)
    (record,) = caplog.records
    assert record.getMessage() == (
        "the/scene: the harmonisation parameter is not used, since P.SAFE/MTD.xml states the "
        "radiometry"
    )


def test_an_item_without_radiometry_falls_back_to_the_parameter() -> None:
    hints = RadiometryHints(item=ItemRadiometry("i"), names=["i", "20230101"])
    assert decide(hints, HarmonisationParam(offset=-1000), "s", BANDS).source == "parameter"
    with pytest.raises(HarmonisationError, match="date 2023-01-01"):
        decide(hints, None, "s", BANDS)


@pytest.mark.parametrize(
    ("names", "source"),
    [(["T33UUP_20211231T100031_B02.jp2"], "name"), (["B02.tif"], "undated")],
)
def test_names_before_2022_or_none_store_as_read(names: list[str], source: str) -> None:
    chosen = decide(RadiometryHints(names=names), None, "scene", BANDS)
    assert chosen.source == source and chosen.is_identity(BANDS)


@pytest.mark.parametrize(
    ("names", "evidence"),
    [
        (["T33UUP_20220125T100031_B02.jp2"], "named with date 2022-01-25"),
        (["S2A_MSIL1C_20180101T1_N0400_R054_T1_2018"], "named with baseline 04.00"),
    ],
)
def test_names_from_the_offset_date_or_baseline_on_are_refused(
    names: list[str], evidence: str
) -> None:
    with pytest.raises(HarmonisationError, match=r"harmonisation=\{'offset': -1000\}") as caught:
        decide(RadiometryHints(names=names), None, "the/scene", BANDS)
    message = str(caught.value)
    assert message.startswith(f"the/scene is {evidence}, so its digital numbers may carry")
    assert "comes without product metadata saying so. Tile the whole .SAFE product" in message


def test_clamped_values_are_counted_like_apply_clamps_them() -> None:
    dn = np.array([[[0, 500, 1000, 1001, 65535]]], dtype=np.uint16)
    assert ESA.count_clamped(dn, ("B02",), None) == 2  # 500 and 1000; 0 is nodata
    assert ESA.count_clamped(dn, ("B02",), 65535) == 3  # 0 is a value now, 65535 nodata
    assert Harmonisation("undated", "x").count_clamped(dn, ("B02",), None) == 0
    scaled = Harmonisation("parameter", "x", {"B02": -10.0}, quantification=255)
    small = np.array([[[0, 10, 11, 200]]], dtype=np.uint8)
    assert (
        scaled.count_clamped(small, ("B02",), None) == scaled.apply(small, ("B02",), None)[1] == 1
    )


@pytest.mark.parametrize("quantification", [255.0, 10000.0, 20000.0, 30000.0])
@pytest.mark.parametrize("offset", [0.0, -1000.0, -0.5])
def test_counting_clamps_agrees_with_applying(quantification: float, offset: float) -> None:
    """For any scale and offset, the count equals what :meth:`apply` clamps, including a DN
    that rounds to reflectance 0 only after scaling (DN 1 at 20000 DNs per unit is 0.5)."""
    dn = np.arange(0, 1200, dtype=np.uint16).reshape(1, 1, -1)
    harmonisation = Harmonisation("parameter", "x", {"B02": offset}, quantification)
    _, clamped = harmonisation.apply(dn, ("B02",), None)
    assert harmonisation.count_clamped(dn, ("B02",), None) == clamped


def test_record_without_bands_lists_the_declared_offsets() -> None:
    partial = Harmonisation("parameter", "x", {"B08": -5.0, "B02": -1.0})
    assert partial.to_record()["offsets"] == {"B02": -1.0, "B08": -5.0}


@pytest.mark.parametrize(
    "name",
    [
        "T33UUP_20231399T000000_20210105T000000",  # no month 13: not a date at all
        "T33UUP_20230231T000000_20210105T000000",  # looks like one, but no 31 February
    ],
)
def test_a_non_date_does_not_hide_a_later_date(name: str) -> None:
    dated, _ = name_evidence([name])
    assert str(dated) == "2021-01-05"


@pytest.mark.parametrize(
    ("names", "detail", "baseline"),
    [
        (["S2B_MSIL1C_20200101T1_N0208_R054_T18SVG_20200101T2"], "baseline 02.08", "02.08"),
        (["T33UUP_20211231T100031_B02.jp2"], "date 2021-12-31", None),
    ],
)
def test_what_the_names_decided_is_recorded(
    names: list[str], detail: str, baseline: str | None
) -> None:
    chosen = decide(RadiometryHints(names=names), None, "scene", BANDS)
    assert chosen.detail == f"named with {detail} (before 2022-01-25)"
    assert chosen.baseline == baseline
    undated = decide(RadiometryHints(names=["B02.tif"]), None, "scene", BANDS)
    assert undated.detail == "no metadata, no date in its names: stored as read"


def test_the_refusal_offers_both_readings() -> None:
    with pytest.raises(HarmonisationError) as caught:
        decide(RadiometryHints(names=["T33UUP_20230101T100031_B02.jp2"]), None, "s", BANDS)
    assert str(caught.value).endswith(
        "or pass harmonisation={'offset': -1000} if these are ESA's digital numbers, or "
        "harmonisation={'offset': 0} if they are already harmonised."
    )


def test_item_decisions_name_the_item() -> None:
    for item in (
        ItemRadiometry("S2B_X", offset_applied=True),
        ItemRadiometry("S2B_X", baseline="05.00"),
    ):
        assert decide(RadiometryHints(item=item), None, "s", BANDS).detail.startswith(
            "STAC Item S2B_X: "
        )


def test_a_parameter_shadowed_by_a_stac_item_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    hints = RadiometryHints(item=ItemRadiometry("S2B_T33UUP_20230605_0_L2A", baseline="05.09"))
    with caplog.at_level("WARNING", logger="datasets.harmonise"):
        decide(hints, HarmonisationParam(offset=0), "the/item.json", BANDS)
    assert caplog.messages == [
        "the/item.json: the harmonisation parameter is not used, since STAC Item "
        "S2B_T33UUP_20230605_0_L2A states the radiometry"
    ]


def test_the_parameter_is_recorded_with_its_values() -> None:
    param = HarmonisationParam(offset=-1000, quantification=10000)
    chosen = decide(RadiometryHints(), param, "bare/folder", BANDS)
    assert chosen.source == "parameter"
    assert chosen.detail == "harmonisation parameter (offset -1000, quantification 10000)"


def test_values_beyond_the_uint16_range_saturate() -> None:
    """Fewer DNs per unit than the stored 10000 scale values up: a DN past the range is
    stored as 65535, not wrapped around."""
    doubled = Harmonisation("parameter", "x", {}, quantification=5000.0)
    dn = np.array([[[1, 20000, 32767, 40000, 65535]]], dtype=np.uint16)
    values, _ = doubled.apply(dn, ("B02",), None)
    assert values.tolist() == [[[2, 40000, 65534, 65535, 65535]]]
