"""STAC inputs: Items from a STAC API on 127.0.0.1, COG assets in a loopback S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data.s2_products.data import Products
from data.s2_products.stac import (
    APPLIED,
    BBOX,
    COLLECTION,
    NOT_APPLIED,
    PLANETARY,
    shifted,
)
from loopback import refusing_url
from stac_api import StacCatalogue

from datasets.errors import SceneFetchError, SceneReadError
from datasets.patch_store import open_patch_store
from datasets.scenes import open_scene
from datasets.stac_search import StacSearch, search_scenes
from datasets.tiling import tile_scene
from datasets.tiling_params import TilingParams

BUCKET = "s2sr-stac-items"  # where the stac_catalogue fixture keeps the assets
PARAMS = TilingParams(patch_size=64, scale=4, masks={"source": "none"})


def _patches(scene: str, store: Path, options: dict[str, str], **fields: Any) -> Any:
    params = TilingParams.model_validate({**PARAMS.model_dump(), **fields})
    result = tile_scene(scene, str(store), params, scene_storage_options=options)
    return result, open_patch_store(str(store))


@pytest.mark.parametrize("item_id", [APPLIED, NOT_APPLIED, PLANETARY])
def test_items_with_and_without_the_offset_store_the_same_values(
    stac_catalogue: StacCatalogue, s2_products: Products, tmp_path: Path, item_id: str
) -> None:
    """Fails if the Earth Search flag, the product metadata asset or the baseline were ignored
    (values 1000 off) or the offset applied twice."""
    _, reference = _patches(str(s2_products.pre2022_l1c), tmp_path / "ref.zarr", {})
    result, ds = _patches(
        stac_catalogue.api.item_url(item_id), tmp_path / "item.zarr", stac_catalogue.options
    )
    assert result.scene_id == item_id
    assert ds["hr"].values.tobytes() == reference["hr"].values.tobytes()
    assert ds["lr"].values.tobytes() == reference["lr"].values.tobytes()
    source = {APPLIED: "stac-item", NOT_APPLIED: "product-metadata", PLANETARY: "product-metadata"}
    assert result.harmonisation["source"] == source[item_id]


def test_the_items_scl_masks_clouds(stac_catalogue: StacCatalogue, tmp_path: Path) -> None:
    result, _ = _patches(
        stac_catalogue.api.item_url(APPLIED), tmp_path / "s.zarr", stac_catalogue.options, masks={}
    )
    assert result.mask["source"] == "scl" and result.dropped_masked == 6


def test_a_search_finds_items_by_area_time_and_cloud_cover(stac_catalogue: StacCatalogue) -> None:
    search = StacSearch(url=stac_catalogue.api.url, collection=COLLECTION, bbox=BBOX)
    everything = search_scenes(search)
    assert everything == [stac_catalogue.api.item_url(i) for i in (APPLIED, NOT_APPLIED, PLANETARY)]
    clear = search_scenes(search.model_copy(update={"max_cloud_cover": 15}))
    assert clear == [stac_catalogue.api.item_url(APPLIED), stac_catalogue.api.item_url(NOT_APPLIED)]
    elsewhere = search.model_copy(update={"bbox": (10.0, 50.0, 10.1, 50.1)})
    assert search_scenes(elsewhere) == []
    earlier = search.model_copy(update={"datetime": "2021-01-01/2021-12-31"})
    assert search_scenes(earlier) == []
    assert "/search" in stac_catalogue.api.requests


def test_an_unreachable_api_is_one_clear_error() -> None:
    url = refusing_url()
    with pytest.raises(SceneFetchError, match="could not be reached") as caught:
        search_scenes(StacSearch(url=url, collection=COLLECTION))
    assert url in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SceneFetchError, match="could not be reached"):
        open_scene(f"{url}/collections/{COLLECTION}/items/x")


def test_an_item_lacking_a_band_names_its_assets(stac_catalogue: StacCatalogue) -> None:
    with pytest.raises(SceneReadError, match="no asset for band B05") as caught:
        open_scene(
            stac_catalogue.api.item_url(APPLIED),
            ("B02", "B05"),
            storage_options=stac_catalogue.options,
        )
    assert "rededge1" in str(caught.value) and "blue" in str(caught.value)


def _local_item(tmp_path: Path, item: dict[str, Any]) -> str:
    import json

    path = tmp_path / f"{item['id']}.json"
    path.write_text(json.dumps(item))
    return str(path)


def test_an_item_whose_assets_lie_elsewhere_than_claimed_is_refused(
    stac_catalogue: StacCatalogue, tmp_path: Path
) -> None:
    item = shifted(stac_catalogue.items[APPLIED], "red", 3)
    with pytest.raises(SceneReadError, match="proj:transform do not describe") as caught:
        open_scene(_local_item(tmp_path, item), storage_options=stac_catalogue.options)
    assert "B04" in str(caught.value)


def test_an_unreachable_asset_is_one_clear_error(
    stac_catalogue: StacCatalogue, tmp_path: Path
) -> None:
    item = dict(stac_catalogue.items[APPLIED])
    item["assets"] = {
        **item["assets"],
        "blue": {**item["assets"]["blue"], "href": f"s3://{BUCKET}/cogs/missing.tif"},
    }
    with pytest.raises(SceneReadError, match=r"missing\.tif") as caught:
        open_scene(_local_item(tmp_path, item), storage_options=stac_catalogue.options)
    assert "\n" not in str(caught.value)


def test_an_item_collection_file_names_its_item(
    stac_catalogue: StacCatalogue, tmp_path: Path
) -> None:
    import json

    path = tmp_path / "items.json"
    features = list(stac_catalogue.items.values())
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with open_scene(f"{path}#{NOT_APPLIED}", storage_options=stac_catalogue.options) as scene:
        assert scene.scene_id == NOT_APPLIED
    with pytest.raises(SceneReadError, match="holds no Item 'nope'"):
        open_scene(f"{path}#nope", storage_options=stac_catalogue.options)


def test_asset_urls_are_signed_before_use(stac_catalogue: StacCatalogue, tmp_path: Path) -> None:
    """The signer hook (Planetary Computer's SAS tokens) sees every asset URL before it is
    read: here the Item names unusable URLs that only the signer turns into real ones."""
    item = dict(stac_catalogue.items[APPLIED])
    item["assets"] = {
        key: {**asset, "href": asset["href"].replace("s3://", "unsigned://")}
        for key, asset in item["assets"].items()
    }
    seen: list[str] = []

    def sign(url: str) -> str:
        seen.append(url)
        return url.replace("unsigned://", "s3://")

    with open_scene(
        _local_item(tmp_path, item), sign=sign, storage_options=stac_catalogue.options
    ) as scene:
        pixels = scene.read()
    assert len(seen) >= 4 and all(url.startswith("unsigned://") for url in seen)
    assert pixels.shape == (4, 256, 256) and np.count_nonzero(pixels) > 0


def test_a_zipped_product_on_s3_is_read_in_place(
    stac_catalogue: StacCatalogue, s2_products: Products, tmp_path: Path
) -> None:
    """``/vsizip/`` chained with ``/vsis3/``: the same patches as the local zip."""
    import s3fs

    fs = s3fs.S3FileSystem(**stac_catalogue.options, skip_instance_cache=True)
    key = f"{BUCKET}/zipped/{s2_products.l2a_2023_zip.name}"
    fs.put(str(s2_products.l2a_2023_zip), key)
    remote, _ = _patches(f"s3://{key}", tmp_path / "remote.zarr", stac_catalogue.options, masks={})
    local, _ = _patches(str(s2_products.l2a_2023_zip), tmp_path / "local.zarr", {}, masks={})
    assert remote.scene_id == local.scene_id and remote.mask["source"] == "scl"
    a = open_patch_store(str(tmp_path / "remote.zarr"))["hr"].values
    b = open_patch_store(str(tmp_path / "local.zarr"))["hr"].values
    assert a.tobytes() == b.tobytes() and len(a) == 10


def test_an_item_super_resolves_like_the_product(
    stac_catalogue: StacCatalogue, s2_products: Products, tiny_checkpoint: str, tmp_path: Path
) -> None:
    import json

    import rasterio

    from srgan.super_resolve_scene import super_resolve_scene

    tiling = {"tile_size": 64, "overlap": 16, "storage_options": stac_catalogue.options}
    item = super_resolve_scene(
        stac_catalogue.api.item_url(NOT_APPLIED), tiny_checkpoint, tmp_path / "i.tif", **tiling
    )
    product = super_resolve_scene(
        s2_products.pre2022_l1c, tiny_checkpoint, tmp_path / "p.tif", tile_size=64, overlap=16
    )
    with rasterio.open(item.output) as a, rasterio.open(product.output) as b:
        assert np.array_equal(a.read(), b.read())
        assert json.loads(a.tags()["SR_HARMONISATION"])["source"] == "product-metadata"
    assert item.scene_id == NOT_APPLIED
