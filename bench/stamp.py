"""Which commit each recorded benchmark table measured, and whether its code has moved on since.

Every table in ``bench/RESULTS.md`` sits in a block ``<!-- bench:NAME -->`` …
``<!-- /bench:NAME -->`` whose first line is a stamp::

    Measured at commit `0123abc…` (clean tree).

A benchmark writes its block only from a clean tree (tracked files unchanged since the commit,
``bench/RESULTS.md`` and ``bench/results/`` aside), so the commit names exactly the code that
ran. ``S2SR_BENCH_ALLOW_DIRTY=1`` writes anyway, stamped ``<commit>+dirty``: such a table names
no reproducible code and ``make bench-check`` always lists it.

:data:`MEASURED_CODE` says which paths each table measures; a table is out of date when any of
them changed between its commit and ``HEAD``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_MD = REPO / "bench" / "RESULTS.md"

#: Files a benchmark writes; they may differ from the commit when a table is stamped.
OUTPUTS = ("bench/RESULTS.md", "bench/results")

#: The product code (and benchmark code) each recorded table measures, by block name.
#: A block not listed here is compared against :data:`DEFAULT_CODE`.
MEASURED_CODE: dict[str, tuple[str, ...]] = {
    "training": ("srgan", "datasets/loader.py", "bench/training.py", "bench/worker.py",
                 "bench/workloads.py", "bench/peaks.py"),
    "training-ablation": ("srgan", "datasets/loader.py", "bench/training.py",
                          "bench/worker.py", "bench/workloads.py", "bench/peaks.py"),
    "training-ablation-summary": ("srgan", "datasets/loader.py", "bench/training.py",
                                  "bench/worker.py", "bench/workloads.py", "bench/peaks.py"),
    "equivalence": ("srgan", "bench/equivalence.py", "bench/worker.py", "bench/workloads.py"),
    "datapath": ("datasets", "srgan/data.py", "bench/datapath.py"),
    "quality": ("srgan", "datasets", "bench/quality.py", "bench/worker.py"),
    "overhead": ("srgan", "bench/overhead.py", "bench/worker.py", "bench/workloads.py"),
    "tiling": ("datasets", "bench/tiling.py"),
    "super-resolve": ("srgan", "datasets", "bench/super_resolve.py"),
    "prefect-overhead": ("srgan", "datasets", "tasks", "flows", "bench/prefect_overhead.py"),
    "delivered": ("datasets", "bench/delivered.py", "bench/tiling.py"),
    "mask-threshold": ("bench/mask_threshold.py",),
    "cog-codecs": ("datasets/cog_levels.py", "bench/cog_codecs.py"),
    "sr-profile-10m-bfloat16": ("srgan", "bench/sr_profile.py", "bench/super_resolve.py"),
}  # fmt: skip
DEFAULT_CODE = ("srgan", "datasets", "tasks", "flows", "bench")

ALLOW_DIRTY = "S2SR_BENCH_ALLOW_DIRTY"
_STAMP = re.compile(r"^Measured at commit `([0-9a-f]{7,40})(\+dirty)?`")
_BLOCK = re.compile(r"<!-- bench:([\w.-]+) -->\n(.*?)<!-- /bench:\1 -->", re.DOTALL)


class DirtyTreeError(RuntimeError):
    """The working tree has uncommitted changes, so no commit names the code being measured."""


def _git(*args: str, repo: Path = REPO) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def uncommitted(repo: Path = REPO) -> list[str]:
    """Tracked files changed since ``HEAD``, benchmark outputs aside."""
    excluded = [f":(exclude){path}" for path in OUTPUTS]
    return _git("diff", "--name-only", "HEAD", "--", ".", *excluded, repo=repo).splitlines()


def commit_to_record(repo: Path = REPO, allow_dirty: bool = False) -> str:
    """The full hash of ``HEAD``, to stamp a table measured now (``+dirty`` if allowed and the
    tree has uncommitted changes; ``unknown`` outside a git checkout when allowed).

    Args:
        repo: the checkout whose code is measured.
        allow_dirty: stamp ``<commit>+dirty`` instead of refusing (tables written outside
            ``bench/RESULTS.md``, e.g. by tests); ``S2SR_BENCH_ALLOW_DIRTY=1`` does the same.

    Raises:
        DirtyTreeError: tracked files differ from ``HEAD`` and dirty stamps are not allowed:
            commit or stash them first, so the table names the code it measured.
    """
    allow_dirty = allow_dirty or os.environ.get(ALLOW_DIRTY) == "1"
    try:
        commit = _git("rev-parse", "HEAD", repo=repo)
        changed = uncommitted(repo)
    except (OSError, subprocess.CalledProcessError) as err:
        if allow_dirty:
            return "unknown"
        raise DirtyTreeError(f"{repo} is not a git checkout ({err}): no commit to record") from err
    if not changed:
        return commit
    if allow_dirty:
        return f"{commit}+dirty"
    shown = ", ".join(changed[:5]) + (" …" if len(changed) > 5 else "")
    raise DirtyTreeError(
        f"uncommitted changes ({shown}): a table measured now would name no commit. Commit or "
        f"stash them and run again, or set {ALLOW_DIRTY}=1 to record a table marked +dirty."
    )


def stamp_line(commit: str) -> str:
    """The first line of a recorded block: the commit it measured."""
    if commit == "unknown":
        return "Measured outside a git checkout: no commit recorded."
    if commit.endswith("+dirty"):
        return f"Measured at commit `{commit}` (uncommitted changes: not reproducible)."
    return f"Measured at commit `{commit}` (clean tree)."


def stamped(commit: str, markdown: str) -> str:
    """``markdown`` preceded by its stamp (an old stamp in it is replaced)."""
    lines = markdown.strip().splitlines()
    if lines and _STAMP.match(lines[0]):
        lines = lines[1:]
    return "\n".join([stamp_line(commit), *lines])


@dataclass(frozen=True)
class TableAge:
    """How a recorded table relates to the code at ``HEAD``."""

    block: str
    commit: str | None
    dirty: bool
    paths: tuple[str, ...]
    #: commits since ``commit`` that changed :attr:`paths` (``None``: unknown commit or none)
    commits_since: int | None
    changed_files: tuple[str, ...]

    @property
    def current(self) -> bool:
        """True when the table measured exactly the code at ``HEAD``."""
        return self.commits_since is not None and not self.dirty and not self.changed_files

    def describe(self) -> str:
        """One line for ``make bench-check``."""
        if self.commit is None:
            return f"{self.block}: names no commit; re-measure it"
        short = self.commit[:10]
        if self.commits_since is None:
            return f"{self.block}: commit {short} is not in this history; re-measure it"
        if self.dirty:
            return (
                f"{self.block}: measured on uncommitted changes to {short}; "
                f"{self.commits_since} commit(s) changed its code since; re-measure it"
            )
        if self.changed_files:
            files = ", ".join(self.changed_files[:4])
            more = f" and {len(self.changed_files) - 4} more" if len(self.changed_files) > 4 else ""
            return (
                f"{self.block}: measured at {short}; {self.commits_since} commit(s) since changed "
                f"{files}{more}"
            )
        return f"{self.block}: current (measured at {short})"


def recorded_blocks(text: str) -> dict[str, str | None]:
    """The blocks of a RESULTS.md text and the commit each is stamped with (``None``: none)."""
    blocks: dict[str, str | None] = {}
    for name, body in _BLOCK.findall(text):
        match = _STAMP.match(body.lstrip())
        blocks[name] = (match.group(1) + (match.group(2) or "")) if match else None
    return blocks


def table_age(block: str, commit: str | None, repo: Path = REPO) -> TableAge:
    """Compare the code a table measured (:data:`MEASURED_CODE`) with ``HEAD``."""
    paths = MEASURED_CODE.get(block, DEFAULT_CODE)
    if commit is None:
        return TableAge(block, None, False, paths, None, ())
    dirty = commit.endswith("+dirty")
    base = commit.removesuffix("+dirty")
    try:
        full = _git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", repo=repo)
        _git("merge-base", "--is-ancestor", full, "HEAD", repo=repo)
    except subprocess.CalledProcessError:
        return TableAge(block, base, dirty, paths, None, ())
    spec = [*paths, *(f":(exclude){path}" for path in OUTPUTS)]
    since = int(_git("rev-list", "--count", f"{full}..HEAD", "--", *spec, repo=repo))
    changed = _git("diff", "--name-only", full, "HEAD", "--", *spec, repo=repo).splitlines()
    return TableAge(block, full, dirty, paths, since, tuple(changed))


def unstamped_tables(text: str) -> list[str]:
    """Where a markdown table sits outside every block (so it names no commit): the heading
    above it and its line number."""
    outside = _BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    found, heading = [], "(top of file)"
    for number, line in enumerate(outside.splitlines(), start=1):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", line):
            found.append(f"{heading} (line {number - 1})")
    return found


def check(results_md: Path = RESULTS_MD, repo: Path = REPO) -> list[TableAge]:
    """The age of every recorded table in ``results_md``, in the file's order."""
    blocks = recorded_blocks(results_md.read_text())
    return [table_age(name, commit, repo) for name, commit in blocks.items()]
