"""A STAC API on 127.0.0.1 serving fixture Items, for tests that search and read real Items.

It answers what pystac-client and the scene reader ask: the landing page (``/``, with its
conformance classes: core, features, item-search and its query extension), ``/conformance``,
``/collections/<id>``, ``/collections/<id>/items/<item>`` and ``/search`` (GET and POST) with
``collections``, ``bbox``, ``intersects`` (by bbox), ``datetime`` and ``query``
(``eo:cloud_cover`` ``lte``/``lt``) and ``limit``.

Example::

    with StacApi(items) as api:
        client = pystac_client.Client.open(api.url)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlparse

from loopback import LOOPBACK

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _geometry_bbox(geometry: dict[str, Any]) -> list[float]:
    points = [p for ring in geometry["coordinates"] for p in ring]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


class StacApi:
    """The server; a context manager that starts it on a free port and stops it.

    Args:
        items: The Items to serve (their ``collection`` names the collection).

    Attributes:
        url: The landing page URL (``http://127.0.0.1:<port>``).
        requests: Paths requested so far (to check what a client asked).
    """

    def __init__(self, items: Iterable[dict[str, Any]]) -> None:
        self.items = {item["id"]: item for item in items}
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                api.requests.append(parsed.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                self._answer(*api.route(parsed.path, query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                api.requests.append(urlparse(self.path).path)
                self._answer(*api.route(urlparse(self.path).path, body))

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def item_url(self, item_id: str) -> str:
        """The URL of one Item."""
        item = self.items[item_id]
        return f"{self.url}/collections/{item['collection']}/items/{item_id}"

    def _with_links(self, item: dict[str, Any]) -> dict[str, Any]:
        links = [
            {"rel": "self", "href": self.item_url(item["id"]), "type": "application/geo+json"},
            {"rel": "root", "href": self.url, "type": "application/json"},
        ]
        return {**item, "links": links}

    def route(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Status and JSON answer for a request."""
        parts = [part for part in path.split("/") if part]
        if not parts:
            return 200, self._landing()
        if parts == ["conformance"]:
            return 200, {"conformsTo": CONFORMANCE}
        if parts == ["search"]:
            return 200, self._search(params)
        if parts[0] == "collections" and len(parts) == 2:
            return 200, {"type": "Collection", "id": parts[1], "stac_version": "1.0.0", "links": []}
        if parts[0] == "collections" and len(parts) == 4 and parts[2] == "items":
            item = self.items.get(parts[3])
            if item is not None and item["collection"] == parts[1]:
                return 200, self._with_links(item)
        return 404, {"code": "NotFound", "description": f"{path} not found"}

    def _landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "loopback",
            "description": "fixture STAC API",
            "stac_version": "1.0.0",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": self.url, "type": "application/json"},
                {"rel": "root", "href": self.url, "type": "application/json"},
                {"rel": "conformance", "href": f"{self.url}/conformance"},
                {
                    "rel": "search",
                    "href": f"{self.url}/search",
                    "method": "GET",
                    "type": "application/geo+json",
                },
                {
                    "rel": "search",
                    "href": f"{self.url}/search",
                    "method": "POST",
                    "type": "application/geo+json",
                },
            ],
        }

    def _search(self, params: dict[str, Any]) -> dict[str, Any]:
        collections = params.get("collections") or []
        if isinstance(collections, str):
            collections = collections.split(",")
        bbox = params.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        if params.get("intersects"):
            intersects = params["intersects"]
            bbox = _geometry_bbox(
                json.loads(intersects) if isinstance(intersects, str) else intersects
            )
        query = params.get("query") or {}
        if isinstance(query, str):
            query = json.loads(query)
        cloud = query.get("eo:cloud_cover", {})
        limit = int(params.get("limit") or 100)
        found = []
        for item in self.items.values():
            props = item["properties"]
            if collections and item["collection"] not in collections:
                continue
            if bbox and not _overlaps(bbox, item["bbox"]):
                continue
            if not self._in_time(props["datetime"], params.get("datetime")):
                continue
            if "lte" in cloud and props.get("eo:cloud_cover", 0) > cloud["lte"]:
                continue
            if "lt" in cloud and props.get("eo:cloud_cover", 0) >= cloud["lt"]:
                continue
            found.append(self._with_links(item))
        return {"type": "FeatureCollection", "features": found[:limit], "links": []}

    @staticmethod
    def _in_time(when: str, interval: str | None) -> bool:
        if not interval:
            return True
        start, _, end = interval.partition("/")
        day = when[:10]
        return (start in ("", "..") or day >= start[:10]) and (end in ("", "..") or day <= end[:10])

    def __enter__(self) -> StacApi:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class StacCatalogue(NamedTuple):
    """A running :class:`StacApi`, the Items it serves (by id), and the storage options of the
    S3 server holding their assets."""

    api: StacApi
    items: dict[str, dict[str, Any]]
    options: Any
