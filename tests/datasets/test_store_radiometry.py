"""The radiometry a patch store reports per scene, including scenes tiled before it was recorded.

The promise: the training report's data table says, for every scene, what harmonisation and
cloud mask went into its patches; a legacy scene (no record) is judged from its names, and one
named after the 2022 offset change makes the store refuse new scenes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from data.s2_products.data import DARK_WATER, Products
from patch_batches import one_patch

from datasets.errors import TilingError
from datasets.store_radiometry import (
    PRE_2022_ASSUMED,
    UNHARMONISED,
    check_store_radiometry,
    scene_radiometry,
    scene_rows,
)
from datasets.store_version import Manifest, SceneEntry
from datasets.store_writer import PatchStoreWriter
from datasets.tiling import store_params, tile_scene
from datasets.tiling_params import TilingParams

PARAMS = TilingParams(patch_size=64, scale=4, split={"block_size": 128, "val_fraction": 0.5})


def _legacy(scene_id: str, source: str | None = None) -> SceneEntry:
    return SceneEntry(scene_id, 0, 1, 1, 0, "EPSG:32633", "0.1.0", source=source)


@pytest.mark.parametrize(
    ("scene_id", "source", "evidence"),
    [
        ("S2A_MSIL1C_20230101T100031_N0509_R122_T33UUP_20230101T1", None, "baseline 05.09"),
        ("S2A_MSIL1C_20180101T100031_N0400_R122_T33UUP_20180101T1", None, "baseline 04.00"),
        ("T33UUP_20220125T100031", None, "date 2022-01-25"),
        # the source's last path element, trailing slash ignored, dates it
        ("scene-7", "s3://bucket/S2B_MSIL1C_20230605T1_N0509_R1_T33UUP_20230605T1.SAFE/", None),
        # a 2018 scene reprocessed in 2023: the later date counts
        ("T33UUP_20180101T100031_20230605", None, "date 2023-06-05"),
    ],
)
def test_legacy_scenes_named_after_the_offset_change_are_unharmonised(
    scene_id: str, source: str | None, evidence: str | None
) -> None:
    """Fails if the baseline or date boundary moves by one (04.00, 2022-01-25 are both late),
    if the source's name is not read, or if the earliest date of a name is used."""
    radiometry = scene_radiometry(_legacy(scene_id, source))
    assert radiometry["source"] == UNHARMONISED
    assert radiometry["detail"].startswith("tiled before harmonisation was recorded; named with")
    if evidence is not None:
        assert radiometry["detail"].endswith(evidence)


@pytest.mark.parametrize(
    ("scene_id", "source"),
    [
        ("T33UUP_20220124T100031", None),
        ("S2A_MSIL1C_20230101T100031_N0399_R122_T33UUP_20230101T1", None),  # baseline wins
        ("scene-7", None),
        ("scene-7", "/data/S2A_MSIL1C_20200101T1_N0208_R1_T33UUP_20200101T1.SAFE"),
        # only the source's own name counts, not the folders above it
        ("scene-7", "/runs/20230605/T33UUP_20200101T100031/"),
        # a date that is no calendar day is no evidence
        ("T33UUP_20230231T100031", None),
    ],
)
def test_legacy_scenes_dated_before_it_or_not_at_all_are_assumed_pre_2022(
    scene_id: str, source: str | None
) -> None:
    radiometry = scene_radiometry(_legacy(scene_id, source))
    assert radiometry == {
        "source": PRE_2022_ASSUMED,
        "detail": "tiled before harmonisation was recorded; no name dates it after 2022-01-24",
    }


def test_a_recorded_radiometry_is_reported_as_recorded() -> None:
    recorded = {"source": "parameter", "offsets": {"B02": -1000.0}, "clamped_pixels": 3}
    entry = SceneEntry("T33UUP_20230101T100031", 0, 1, 1, 0, "EPSG:32633", "1", radiometry=recorded)
    assert scene_radiometry(entry) == recorded


def test_the_refusal_names_the_late_scenes_and_how_many() -> None:
    late = [_legacy(f"T33UUP_2023010{day}T100031") for day in range(1, 6)]
    manifest = Manifest(scenes=(_legacy("T33UUP_20200101T100031"), *late))
    with pytest.raises(TilingError) as caught:
        check_store_radiometry(manifest, "s3://bucket/store.zarr")
    assert str(caught.value) == (
        "patch store s3://bucket/store.zarr holds 5 scene(s) tiled before s2-srgan harmonised "
        "radiometry and dated after 2022-01-24 (T33UUP_20230101T100031, T33UUP_20230102T100031, "
        "T33UUP_20230103T100031), stored about 0.1 reflectance too bright; adding scenes would "
        "mix two radiometries. Tile all scenes into a new store."
    )
    check_store_radiometry(Manifest(scenes=(_legacy("T33UUP_20200101T100031"),)), "store")


def test_scene_rows_report_each_scene_of_the_version(s2_products: Products, tmp_path: Path) -> None:
    """A legacy scene and a tiled 2023 Level-2A scene: one row each, in append order, with the
    patch counts, the harmonisation, the baseline, the offsets and clamped pixels, and the mask;
    the version before the second commit has the legacy row only."""
    store = str(tmp_path / "store.zarr")
    writer = PatchStoreWriter(store, store_params(PARAMS))
    batch = one_patch("val")
    legacy_id = "S2A_MSIL1C_20200101T100031_N0208_R122_T33UUP_20200101T1"
    first = writer.append_scene(legacy_id, "EPSG:32618", [batch], source=f"/old/{legacy_id}")
    result = tile_scene(str(s2_products.l2a_2023), store, PARAMS)

    legacy_row = {
        "scene": legacy_id,
        "train": 0,
        "val": 1,
        "harmonisation": PRE_2022_ASSUMED,
        "baseline": "",
        "offset": "0",
        "clamped": "",
        "mask": "unrecorded",
    }
    old, new = scene_rows(store)
    assert old == legacy_row
    rows, cols = DARK_WATER
    assert new == {
        "scene": result.scene_id,
        "train": result.patches_kept - result.patches_val,
        "val": result.patches_val,
        "harmonisation": "product-metadata",
        "baseline": "05.10",
        "offset": "-1000",
        "clamped": 4 * (rows.stop - rows.start) * (cols.stop - cols.start),
        "mask": "scl",
    }
    assert result.patches_val > 0 and result.patches_kept > result.patches_val
    assert first.version is not None and first.version != result.version
    assert scene_rows(store, first.version) == [legacy_row]


def test_scene_rows_list_distinct_offsets_and_read_s3_stores(
    tmp_path: Path, s3_server: dict[str, str]
) -> None:
    """A scene whose bands had different offsets lists each once, in order; a store on S3 is
    read with the storage options given (without them the endpoint is AWS's, not this one)."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    if not fs.exists("s2sr-radiometry-rows"):
        fs.mkdir("s2sr-radiometry-rows")
    store = "s3://s2sr-radiometry-rows/store"
    writer = PatchStoreWriter(store, store_params(PARAMS), storage_options=s3_server)
    batch = one_patch("train")
    offsets = {"B02": -1000.0, "B03": -500.0, "B04": -1000.0, "B08": -1500.0}
    record = {"radiometry": {"source": "parameter", "offsets": offsets}, "masks": None}
    writer.append_scene("T33UUP_20230101T1", "EPSG:32633", [batch], record=lambda: record)
    (row,) = scene_rows(store, storage_options=s3_server)
    assert row["offset"] == "-1500, -1000, -500" and row["harmonisation"] == "parameter"
    assert (row["baseline"], row["clamped"], row["mask"]) == ("", "", "unrecorded")
