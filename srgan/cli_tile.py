"""``s2-srgan tile``: scenes into a patch store without a Prefect server.

The same code path as the ``tile-sentinel2`` flow's task: one :class:`TilingParams` built from
the options, :func:`datasets.tiling.tile_scene` per scene, and the summary read from the store.

Example::

    s2-srgan tile S2B_MSIL2A_20230615T….SAFE.zip --store patches.zarr --patch-size 128
    s2-srgan tile --stac-url https://earth-search.aws.element84.com/v1 \\
        --collection sentinel-2-l2a --bbox 13.3 52.4 13.5 52.6 --datetime 2023-06 \\
        --max-cloud-cover 10 --store s3://bucket/patches.zarr
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def add_parser(sub: Any, parse_set: Callable[[list[str]], dict[str, Any]]) -> None:
    """Add the ``tile`` command to the CLI's sub-parsers."""
    tile = sub.add_parser("tile", help="tile Sentinel-2 scenes into a patch store")
    tile.add_argument("scenes", nargs="*", help=".SAFE (or .SAFE.zip), band folder, STAC Item...")
    tile.add_argument("--store", required=True, help="patch store URI (local dir or s3://)")
    tile.add_argument("--scan", help="a folder or s3:// prefix to search for scenes")
    stac = tile.add_argument_group("STAC search")
    stac.add_argument("--stac-url", help="STAC API root URL")
    stac.add_argument("--collection", default="sentinel-2-l2a")
    stac.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"))
    stac.add_argument("--datetime", help="instant or interval, e.g. 2023-06-01/2023-06-30")
    stac.add_argument("--max-cloud-cover", type=float)
    stac.add_argument("--limit", type=int, default=20)
    stac.add_argument("--sign", choices=["planetary-computer"], help="sign asset URLs")
    tile.add_argument("--bands", nargs="+", help="band names (default B02 B03 B04 B08)")
    tile.add_argument("--scale", type=int, help="HR pixels per LR pixel (default 4)")
    tile.add_argument("--patch-size", type=int, help="HR patch edge in pixels (default 128)")
    tile.add_argument("--stride", type=int, help="HR pixels between patches")
    tile.add_argument("--offset", type=float, help="harmonisation offset (DN) of bare files")
    tile.add_argument("--quantification", type=float, help="DNs per unit reflectance")
    tile.add_argument(
        "--mask",
        choices=["auto", "scl", "classi", "s2cloudless", "none"],
        help="cloud mask (s2cloudless: computed from a Level-1C product's bands)",
    )
    tile.add_argument("--max-masked-fraction", type=float)
    tile.add_argument("--backend", choices=["icechunk", "zarr"], help="backend of a new store")
    tile.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other tiling option, e.g. split.mode=scene or degradation.kind=real",
    )
    tile.add_argument("--json", action="store_true", help="print the summary as JSON")
    tile.set_defaults(func=lambda args: run(args, parse_set))


def _fields(args: argparse.Namespace, parse_set: Callable[[list[str]], dict[str, Any]]) -> dict:
    fields: dict[str, Any] = parse_set(args.set)
    direct = {
        "bands": args.bands,
        "scale": args.scale,
        "patch_size": args.patch_size,
        "stride": args.stride,
    }
    fields |= {key: value for key, value in direct.items() if value is not None}
    if args.offset is not None or args.quantification is not None:
        given = {"offset": args.offset, "quantification": args.quantification}
        fields["harmonisation"] = {k: v for k, v in given.items() if v is not None}
    masks = {"source": args.mask, "max_masked_fraction": args.max_masked_fraction}
    if any(value is not None for value in masks.values()):
        fields["masks"] = {
            **fields.get("masks", {}),
            **{k: v for k, v in masks.items() if v is not None},
        }
    if args.sign:
        fields["sign"] = args.sign
    return fields


def _progress(label: str) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar = tqdm(desc=label[-40:], unit="row", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _cell(value: Any, width: int = 48) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_cell(row.get(c, "")).ljust(widths[c]) for c in columns))


def run(args: argparse.Namespace, parse_set: Callable[[list[str]], dict[str, Any]]) -> int:
    """Tile the scenes; exit 0 when all were tiled, 1 when some failed, 2 on bad input."""
    from datasets.errors import HarmonisationError, S2SRDataError, is_transient
    from datasets.scenes import find_scenes
    from datasets.stac_search import StacSearch, search_scenes
    from datasets.storage_errors import StorageError
    from datasets.tiling import TileResult, tile_scene
    from datasets.tiling_params import TilingParams
    from datasets.tiling_summary import summarise_store

    try:
        params = TilingParams.build(**_fields(args, parse_set))
        uris = list(dict.fromkeys(args.scenes))
        if args.scan:
            uris += [u for u in find_scenes(args.scan) if u not in uris]
        if args.stac_url:
            search = StacSearch(
                url=args.stac_url,
                collection=args.collection,
                bbox=tuple(args.bbox) if args.bbox else None,
                datetime=args.datetime,
                max_cloud_cover=args.max_cloud_cover,
                limit=args.limit,
                sign=args.sign,
            )
            uris += [u for u in search_scenes(search) if u not in uris]
    except (S2SRDataError, ValueError) as err:  # a ConfigError is a ValueError
        print(f"s2-srgan: error: {err}", file=sys.stderr)
        return 2
    if not uris:
        print(
            "s2-srgan: error: no scenes to tile: give scenes, --scan or --stac-url", file=sys.stderr
        )
        return 2
    results: list[TileResult] = []
    failures: list[tuple[str, str]] = []
    for uri in uris:
        try:
            results.append(
                tile_scene(uri, args.store, params, backend=args.backend, progress=_progress(uri))
            )
        except StorageError:  # the store or the storage settings: every scene would fail alike
            raise
        except S2SRDataError as err:
            hint = " (transient: run again)" if is_transient(err) else ""
            if isinstance(err, HarmonisationError):
                hint = " On the command line: --offset -1000 (or 0), --quantification N."
            print(f"s2-srgan: {uri}: {err}{hint}", file=sys.stderr)
            failures.append((uri, str(err)))
    summary = summarise_store(args.store, results, failures)
    if args.json:
        print(json.dumps({"summary": summary.table(), "version": summary.version}, indent=2))
    else:
        _print_table(summary.table())
    if summary.warning:
        print(f"s2-srgan: warning: {summary.warning}", file=sys.stderr)
    return 1 if failures else 0
