"""Scenes described by STAC Items: per-band Cloud-Optimized GeoTIFFs read windowed in place.

A scene URI is an Item (a JSON file, local or ``s3://``, or an ``https://`` URL such as a STAC
API's ``/collections/<c>/items/<id>``), or an ItemCollection file followed by ``#<item id>``.
Band assets are matched by band id or by name as Earth Search v1 (``blue``, ``nir08``, …) and
Planetary Computer (``B02``, ``B8A``, …) name them; Cloud-Optimized GeoTIFF assets are preferred
to JPEG2000 ones. The scene id is the Item id. The Item's radiometry (linked product metadata,
``earthsearch:boa_offset_applied``, ``raster:bands``, ``s2:processing_baseline``) feeds the
harmonisation rule of :mod:`datasets.harmonise`; its ``scl`` asset is the cloud mask.

Asset URLs can be signed before use (Planetary Computer's SAS tokens): pass ``sign``, a
function from URL to signed URL, or a name of :data:`SIGNERS`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from datasets.errors import HarmonisationError, SceneFetchError, SceneReadError
from datasets.harmonise import ItemRadiometry, ProductMetadata, RadiometryHints
from datasets.scenes.base import BandSource
from datasets.scenes.layout import Layout
from datasets.scenes.product_metadata import METADATA_NAMES, parse_product_metadata
from datasets.scenes.storage import SceneStore

Signer = Callable[[str], str]

EARTH_SEARCH_NAMES = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}
"""Earth Search v1 asset (and ``eo:bands`` name) of each band."""
_METADATA_ASSETS = ("product_metadata", "product-metadata")
_SCL_ASSETS = ("scl", "SCL")
_HTTP_TIMEOUT_S = 30


def _planetary_computer(url: str) -> str:
    try:
        import planetary_computer  # type: ignore[import-not-found]
    except ImportError:
        raise SceneReadError(
            "sign='planetary-computer' needs the planetary-computer package: "
            "pip install planetary-computer"
        ) from None
    return str(planetary_computer.sign(url))


SIGNERS: dict[str, Signer] = {"planetary-computer": _planetary_computer}
"""Named URL signers for ``sign=``."""


def is_stac_uri(uri: str) -> bool:
    """Whether ``uri`` names a STAC Item (``.json``, an ``http(s)`` URL or ``file#item``)."""
    return uri.lower().endswith(".json") or uri.startswith(("http://", "https://")) or "#" in uri


def resolve_signer(sign: str | Signer | None) -> Signer | None:
    """The signing function for ``sign`` (a name of :data:`SIGNERS` or a function).

    Raises:
        ValueError: An unknown signer name; the message lists the names.
    """
    if sign is None or callable(sign):
        return sign
    try:
        return SIGNERS[sign]
    except KeyError:
        raise ValueError(f"Unknown sign={sign!r}; choose one of {', '.join(SIGNERS)}.") from None


def fetch_bytes(url: str, store: SceneStore) -> bytes:
    """The content of ``url`` (``http(s)://`` through urllib, else through ``store``).

    Raises:
        SceneReadError: Not found or refused; :class:`SceneFetchError` when unreachable.
    """
    if not url.startswith(("http://", "https://")):
        try:
            return store.read_bytes(url)
        except FileNotFoundError:
            raise SceneReadError(f"{url} does not exist; check the URI.") from None
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise SceneFetchError(f"{url} answered HTTP {err.code}; run again later.") from None
        raise SceneReadError(
            f"{url} answered HTTP {err.code} ({err.reason}); check the URL."
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise SceneFetchError(
            f"{url} could not be reached ({reason}); check the URL and the network, or run "
            "again (the tile-sentinel2 flow retries by itself)."
        ) from None


def load_item(uri: str, store: SceneStore) -> dict[str, Any]:
    """The Item at ``uri`` as a dict, with its ``self`` URL for resolving relative hrefs.

    Raises:
        SceneReadError: Not a STAC Item (or the ItemCollection lacks the id after ``#``).
    """
    location, _, wanted = uri.partition("#")
    try:
        document = json.loads(fetch_bytes(location, store))
    except json.JSONDecodeError as err:
        raise SceneReadError(f"{location} is not JSON ({err}); expected a STAC Item.") from None
    if document.get("type") == "FeatureCollection":
        items = {feature.get("id"): feature for feature in document.get("features", [])}
        if wanted not in items:
            ids = ", ".join(str(i) for i in list(items)[:10]) or "none"
            raise SceneReadError(
                f"{location} holds no Item {wanted!r} (Items: {ids}); name one as "
                f"{location}#<item id>."
            )
        document = items[wanted]
    if document.get("type") != "Feature" or "assets" not in document:
        raise SceneReadError(f"{uri} is not a STAC Item (no Feature with assets).")
    document.setdefault("_base", location)
    return dict(document)


def _href(item: Mapping[str, Any], asset: Mapping[str, Any], sign: Signer | None) -> str:
    href = str(asset["href"])
    if "://" not in href and not href.startswith("/"):
        href = urljoin(item["_base"], href)
    return sign(href) if sign is not None else href


def _asset_names(key: str, asset: Mapping[str, Any]) -> set[str]:
    names = {key.lower()}
    for band in asset.get("eo:bands", []) or asset.get("bands", []):
        names.add(str(band.get("name", "")).lower())
    return names


def _is_jp2(key: str, asset: Mapping[str, Any]) -> bool:
    return key.endswith("-jp2") or "jp2" in str(asset.get("type", ""))


def match_assets(item: Mapping[str, Any], bands: Sequence[str]) -> dict[str, str]:
    """Band → asset key of the Item's asset holding it.

    Raises:
        SceneReadError: A band has no asset (the message lists the assets).
    """
    assets: Mapping[str, Any] = item["assets"]
    found: dict[str, str] = {}
    for band in bands:
        wanted = {band.lower(), EARTH_SEARCH_NAMES[band]}
        keys = [key for key, asset in assets.items() if _asset_names(key, asset) & wanted]
        keys.sort(key=lambda key: _is_jp2(key, assets[key]))  # COGs first
        if not keys:
            listing = ", ".join(assets)
            raise SceneReadError(
                f"STAC Item {item.get('id')} has no asset for band {band} (looked for "
                f"{band} or {EARTH_SEARCH_NAMES[band]}; assets: {listing}); choose bands the "
                "Item carries."
            )
        found[band] = keys[0]
    return found


def _radiometry(item: Mapping[str, Any], keys: Mapping[str, str]) -> ItemRadiometry:
    properties = item.get("properties", {})
    scaling = {}
    for band, key in keys.items():
        raster = (item["assets"][key].get("raster:bands") or [{}])[0]
        if "scale" in raster and "offset" in raster:
            scaling[band] = (float(raster["scale"]), float(raster["offset"]))
    applied = properties.get("earthsearch:boa_offset_applied")
    return ItemRadiometry(
        str(item.get("id")),
        bool(applied) if applied is not None else None,
        properties.get("s2:processing_baseline"),
        scaling,
    )


def _metadata(
    item: Mapping[str, Any], store: SceneStore, sign: Signer | None
) -> ProductMetadata | HarmonisationError | None:
    for key, asset in item["assets"].items():
        href = str(asset.get("href", ""))
        if key in _METADATA_ASSETS or href.rsplit("/", 1)[-1] in METADATA_NAMES:
            url = _href(item, asset, sign)
            try:
                return parse_product_metadata(fetch_bytes(url, store), url)
            except HarmonisationError as err:
                return err
    return None


def stac_layout(
    uri: str, bands: Sequence[str], storage_options: Mapping[str, Any] | None, sign: Signer | None
) -> tuple[SceneStore, Layout]:
    """The store to read the Item's assets from, and the scene layout it describes.

    Raises:
        SceneReadError: Not an Item, a band without asset, or assets on different storages;
            :class:`SceneFetchError` when the Item or its metadata cannot be fetched.
    """
    item_store = SceneStore.for_uri(uri.partition("#")[0], storage_options)
    item = load_item(uri, item_store)
    keys = match_assets(item, bands)
    hrefs = {band: _href(item, item["assets"][key], sign) for band, key in keys.items()}
    store = SceneStore.for_uri(next(iter(hrefs.values())), storage_options)
    if len({SceneStore.for_uri(href).remote for href in hrefs.values()}) > 1:
        raise SceneReadError(
            f"STAC Item {item.get('id')} keeps its bands on different storages "
            f"({', '.join(hrefs.values())}); s2-srgan reads one storage per scene."
        )
    scl = [key for key in _SCL_ASSETS if key in item["assets"]]
    masks = {"scl": _href(item, item["assets"][scl[0]], sign)} if scl else {}
    datetime = str(item.get("properties", {}).get("datetime") or "")[:10].replace("-", "")
    hints = RadiometryHints(
        metadata=_metadata(item, store, sign),
        item=_radiometry(item, keys),
        names=[str(item.get("id")), datetime],
    )
    sources = [BandSource(band, href) for band, href in hrefs.items()]
    claims = {band: item["assets"][key] for band, key in keys.items()}
    return store, Layout(str(item.get("id")), sources, hints, masks, _grid_claims(claims))


def _grid_claims(assets: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Band → ``(proj:shape, proj:transform)`` the Item claims for it, where it says."""
    return {
        band: (asset["proj:shape"], asset["proj:transform"])
        for band, asset in assets.items()
        if "proj:shape" in asset and "proj:transform" in asset
    }
