"""Benchmark results on disk: one JSON file per result set, tables in ``bench/RESULTS.md``.

``RESULTS.md`` is shared with other benchmarks. This module only rewrites the generated blocks
between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` inside the
``## Training speed (issue #5)`` section; prose around them and other sections are left alone.

The "vs opensr 0.4.3" column divides the ``opensr:BASE`` row's time by each row of the same base
when the result set has one (measured side by side on the same machine); otherwise it is empty:
figures measured on another CPU do not compare.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench import stamp
from bench.system import isa_label

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Training speed (issue #5)"

_GIB = 1024**3
#: Load average below which a timing counts as taken on a quiet machine (2 cores).
QUIET_LOAD = 2.5
#: Prefix of the workloads timed on opensr-srgan (as :data:`bench.workloads.OPENSR_PREFIX`).
OPENSR_PREFIX = "opensr:"


def write_json(name: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` to ``<results_dir>/<name>.json`` and return the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path


def _gflops(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e9:.1f}"


def _percent(part: float | None, whole: float | None) -> str:
    return "–" if not part or not whole else f"{100 * part / whole:.0f} %"


def _vs_opensr(w: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    """The "vs opensr 0.4.3" cell: the side-by-side ratio with its spread, or "–"."""
    if w["workload"].startswith(OPENSR_PREFIX):
        return "reference"
    ratio = w.get("ratio_to_reference")
    if ratio:
        return (
            f"{ratio['median']:.2f}× ({ratio['low']:.2f}–{ratio['high']:.2f}, "
            f"±{100 * ratio['spread']:.1f} %, {ratio['pairs']} pairs)"
        )
    reference = rows.get(f"{OPENSR_PREFIX}{w.get('base', w['workload'])}")
    if reference:
        return f"{reference['seconds_per_iteration'] / w['seconds_per_iteration']:.2f}×"
    return "–"


def settings_label(settings: dict[str, Any] | None) -> str:
    """Short form of a row's step settings, e.g. ``NHWC fused retain 32-true``."""
    if not settings:
        return "–"
    parts = [
        "NHWC" if settings["channels_last"] else "NCHW",
        "fused" if settings["fused"] else "foreach",
    ]
    parts += ["retain"] if settings["retain_freed_memory"] else []
    parts += ["compile"] if settings["compile"] else []
    parts += [f"{settings['threads']} threads"] if settings.get("threads") else []
    return " ".join([*parts, settings["precision"]])


def ceilings(
    peaks: dict[str, Any], precision: str | None
) -> tuple[float | None, float | None, float | None]:
    """The conv forward, conv forward+backward and matmul peaks a row of ``precision`` is read
    against: the bf16 probes for ``bf16-…`` rows (autocast runs the convolutions and matmuls
    in bf16), the float32 ones otherwise. A training step spends about two thirds of its
    FLOPs in backward passes, so forward+backward is its ceiling."""
    kind = "bf16" if str(precision).startswith("bf16") else "fp32"
    train = max(
        (v for k, v in peaks.items() if k.startswith(f"conv_{kind}_") and k.endswith("_fwd_bwd")),
        default=None,
    )
    return peaks.get(f"conv_{kind}"), train, peaks.get(f"matmul_{kind}")


def training_table(payload: dict[str, Any]) -> str:
    """Markdown table of one training result set (see :func:`bench.training.summarise`)."""
    peaks = payload.get("peaks") or {}
    m = payload["machine"]
    cpu = f"{m['cpu']} ({isa_label(m)})"
    rows = {w["workload"]: w for w in payload["workloads"]}
    lines = [
        "| workload | CPU (ISA) | settings | s/it median (range) | samples/s | vs opensr 0.4.3"
        " | speed-up vs `+before` | CPU s/it | peak RSS | GFLOP/it | GFLOP/s | of conv peak"
        " | of conv fwd+bwd peak | of matmul peak | page faults/it | other load (CPUs) |",
        "|---" * 16 + "|",
    ]
    for name, w in rows.items():
        s = w["seconds_per_iteration"]
        low, high = w["seconds_per_iteration_range"]
        before = rows.get(f"{name}+before")
        speedup = f"{before['seconds_per_iteration'] / s:.2f}×" if before else "–"
        conv_peak, train_peak, matmul_peak = ceilings(peaks, w.get("precision"))
        lines.append(
            f"| `{name}` | {cpu} | {settings_label(w.get('step_settings'))}"
            f" | {s:.3f} ({low:.3f}–{high:.3f}) | {w['samples_per_second']:.1f}"
            f" | {_vs_opensr(w, rows)}"
            f" | {speedup} | {w.get('cpu_seconds_per_iteration', float('nan')):.2f}"
            f" | {w['peak_rss_bytes'] / _GIB:.2f} GiB | {_gflops(w['flops_per_iteration'])}"
            f" | {_gflops(w['achieved_flops'])} | {_percent(w['achieved_flops'], conv_peak)}"
            f" | {_percent(w['achieved_flops'], train_peak)}"
            f" | {_percent(w['achieved_flops'], matmul_peak)}"
            f" | {w.get('page_faults_per_iteration', 0):.0f} | {w['foreign_cpus']:.2f} |"
        )
    return "\n".join(lines)


def peaks_table(peaks: dict[str, Any]) -> str:
    """Markdown table of the measured compute peaks (GFLOP/s)."""
    lines = ["| kernel | GFLOP/s |", "|---|---|"]
    for key, value in peaks.items():
        if key != "threads" and isinstance(value, float):
            lines.append(f"| `{key}` | {value / 1e9:.1f} |")
    return "\n".join(lines)


def profile_table(workload: dict[str, Any], top: int = 15) -> str:
    """Markdown table of a workload's top ops by self CPU time per iteration."""
    lines = [
        f"Top ops of `{workload['workload']}` (profiled run: "
        f"{workload.get('profile_seconds_per_iteration', float('nan')):.3f} s/it):",
        "",
        "| op | input shapes | self ms/it | calls/it |",
        "|---|---|---|---|",
    ]
    for row in workload["profile"][:top]:
        shapes = row["input_shapes"].replace("|", "\\|")
        lines.append(
            f"| `{row['op']}` | `{shapes}` | {row['self_ms_per_iteration']:.1f}"
            f" | {row['calls_per_iteration']:g} |"
        )
    return "\n".join(lines)


def _load_note(payload: dict[str, Any]) -> str:
    load = payload.get("load_average_1min")
    if not load:
        return ""
    quiet = max(load["before"], load["after"]) < QUIET_LOAD
    return f" 1-minute load average {load['before']:.1f} before, {load['after']:.1f} after" + (
        "." if quiet else f" (≥ {QUIET_LOAD}: taken under load from other work)."
    )


def render_training(payload: dict[str, Any]) -> str:
    """The whole generated block of a training result set: header, tables, profiles."""
    m = payload["machine"]
    parts = [
        f"Command: `{payload['command']}` ({payload['created']}, revision {m['git_revision']}).",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
        f"({isa_label(m)}), Lightning {m['lightning']}; "
        f"{len(payload['workloads'][0]['runs'])} fresh processes per workload, "
        f"{payload['settings']['iterations']} timed iterations after "
        f"{payload['settings']['warmup']} warm-up." + _load_note(payload),
        "",
        training_table(payload),
    ]
    side_by_side = [w for w in payload["workloads"] if w["workload"].startswith(OPENSR_PREFIX)]
    if side_by_side:
        versions = sorted({r.get("opensr_srgan", "?") for w in side_by_side for r in w["runs"]})
        stubbed = sorted({m for w in side_by_side for r in w["runs"] for m in r["stubbed_modules"]})
        parts += [
            "",
            f"`opensr:` rows: opensr-srgan {', '.join(versions)} (its own LightningModule and "
            "training step, Lightning Trainer) in `bench/.venv-opensr`, same torch and threads, "
            'interleaved with the other rows; "vs opensr 0.4.3" = the `opensr:` row\'s s/it ÷ '
            "this row's. Stand-ins for modules it imports but never uses here: "
            f"{', '.join(f'`{m}`' for m in stubbed) or 'none'}.",
        ]
    if payload.get("peaks"):
        parts += [
            "",
            "Measured peaks in the same invocation (best of the before/after probes); the "
            "`of … peak` columns read float32 rows against the `fp32` peaks and bf16-mixed rows "
            "against the `bf16` ones:",
        ]
        parts += ["", peaks_table(payload["peaks"])]
    for workload in payload["workloads"]:
        if workload.get("profile"):
            parts += ["", profile_table(workload)]
    return "\n".join(parts)


def update_results_md(
    block: str,
    markdown: str,
    path: Path = RESULTS_MD,
    commit: str | None = None,
    section: str = SECTION,
) -> None:
    """Replace generated block ``block`` of ``path``, or append it to ``section`` (default:
    the issue #5 section).

    The block's first line names the commit measured (:mod:`bench.stamp`): ``commit``, or
    ``HEAD`` now. The repository's own ``bench/RESULTS.md`` is only written from a clean tree.

    Raises:
        bench.stamp.DirtyTreeError: ``path`` is the repository's RESULTS.md, no ``commit`` is
            given and the tree has uncommitted changes.
    """
    if commit is None:
        commit = stamp.commit_to_record(allow_dirty=path.resolve() != RESULTS_MD.resolve())
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    begin, end = f"<!-- bench:{block} -->", f"<!-- /bench:{block} -->"
    content = f"{begin}\n{stamp.stamped(commit, markdown)}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: content, text, count=1)
    else:
        text = _insert_in_section(text, content, section)
    path.write_text(text)


def _insert_in_section(text: str, content: str, section: str = SECTION) -> str:
    start = text.find(section)
    if start < 0:
        return f"{text.rstrip()}\n\n{section}\n\n{content}\n"
    following = re.search(r"^## ", text[start + len(section) :], re.MULTILINE)
    stop = start + len(section) + following.start() if following else len(text)
    head, tail = text[:stop].rstrip(), text[stop:]
    return f"{head}\n\n{content}\n" + (f"\n{tail}" if tail else "")
