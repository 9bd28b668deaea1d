"""Find scenes in a STAC API (Earth Search, Planetary Computer, any STAC API - Item Search).

:class:`StacSearch` is what the ``stac`` parameter of ``tile-sentinel2``, ``retrain-srgan`` and
``s2-srgan tile`` takes; :func:`search_scenes` turns it into Item URLs, the scene URIs that
:func:`datasets.scenes.open_scene` reads.

Example::

    search = StacSearch(
        url="https://earth-search.aws.element84.com/v1",
        collection="sentinel-2-l2a",
        bbox=(13.3, 52.4, 13.5, 52.6),
        datetime="2023-06-01/2023-06-30",
        max_cloud_cover=10,
    )
    uris = search_scenes(search)
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datasets.errors import SceneFetchError, SceneReadError


class StacSearch(BaseModel):
    """A STAC API search for scenes.

    Attributes:
        url: The API's root (landing page) URL.
        collection: The collection to search, e.g. ``sentinel-2-l2a``.
        bbox: ``(west, south, east, north)`` in degrees; or give ``intersects``.
        intersects: A GeoJSON geometry the scenes must intersect.
        datetime: An instant or interval (``2023-06-01/2023-06-30``).
        max_cloud_cover: Keep Items whose ``eo:cloud_cover`` is at most this (percent).
        limit: At most this many Items.
        sign: How to sign the Items' asset URLs before reading them
            (``"planetary-computer"``), if the catalogue needs it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    collection: str
    bbox: tuple[float, float, float, float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    max_cloud_cover: float | None = Field(default=None, ge=0, le=100)
    limit: int = Field(default=20, ge=1, le=10000)
    sign: Literal["planetary-computer"] | None = None

    @model_validator(mode="after")
    def _one_area(self) -> StacSearch:
        if self.bbox is not None and self.intersects is not None:
            raise ValueError("give bbox or intersects, not both")
        return self


def search_scenes(search: StacSearch) -> list[str]:
    """The URLs of the Items a search finds, best (least cloudy) first.

    Raises:
        SceneFetchError: The API cannot be reached (run again).
        SceneReadError: The API refused the search or is not a STAC API.
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(search.url)
        query = (
            {"eo:cloud_cover": {"lte": search.max_cloud_cover}}
            if search.max_cloud_cover is not None and client.conforms_to("QUERY")
            else None
        )
        results = client.search(
            collections=[search.collection],
            bbox=search.bbox,
            intersects=search.intersects,
            datetime=search.datetime,
            query=query,
            max_items=search.limit,
        )
        items = list(results.items_as_dicts())
    except APIError as err:
        status = getattr(err, "status_code", None)
        if status is None or status >= 500 or status == 429:
            raise _unreachable(search, f"HTTP {status}" if status else "no answer") from None
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise SceneReadError(
            f"STAC API {search.url} refused the search for {search.collection} (HTTP {status}: "
            f"{first_line}); check the collection and the search parameters."
        ) from None
    except OSError as err:  # requests' ConnectionError and timeouts are OSErrors
        raise _unreachable(search, type(err).__name__) from None
    if search.max_cloud_cover is not None:
        items = [
            item
            for item in items
            if item.get("properties", {}).get("eo:cloud_cover", 0) <= search.max_cloud_cover
        ]
    items.sort(key=lambda item: item.get("properties", {}).get("eo:cloud_cover", 0))
    return [_item_url(search, item) for item in items]


def _unreachable(search: StacSearch, why: str) -> SceneFetchError:
    return SceneFetchError(
        f"STAC API {search.url} could not be reached ({why}); check the URL and the network, "
        "or run again."
    )


def _item_url(search: StacSearch, item: dict[str, Any]) -> str:
    for link in item.get("links", []):
        if link.get("rel") == "self" and str(link.get("href", "")).startswith("http"):
            return str(link["href"])
    root = search.url.rstrip("/")
    return f"{root}/collections/{quote(search.collection)}/items/{quote(str(item['id']))}"
