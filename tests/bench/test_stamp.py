"""Recorded benchmark tables name the commit they measured; ``make bench-check`` lists the old ones.

Each test builds a small git repository of its own (a ``srgan/`` module, a ``bench/RESULTS.md``)
so commits can be made and code changed without touching the project's history.

Shown failing: with ``uncommitted`` returning ``[]`` (a dirty tree accepted) the refusal test
fails; with ``table_age`` comparing against the commit itself instead of ``HEAD`` the staleness
tests fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import stamp
from bench.check import main as bench_check
from bench.report import update_results_md


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "srgan").mkdir(parents=True)
    (root / "datasets").mkdir()
    (root / "bench").mkdir()
    (root / "srgan" / "train.py").write_text("STEP = 1\n")
    (root / "datasets" / "tiling.py").write_text("TILE = 1\n")
    (root / "bench" / "RESULTS.md").write_text("# Benchmark results\n")
    _git(root, "init", "-q")
    _commit(root, "first")
    return root


def _record(repo: Path, block: str, commit: str) -> None:
    path = repo / "bench" / "RESULTS.md"
    text = path.read_text() + f"\n<!-- bench:{block} -->\n"
    text += f"{stamp.stamp_line(commit)}\n| a |\n|---|\n| 1 |\n<!-- /bench:{block} -->\n"
    path.write_text(text)


def test_a_clean_tree_is_stamped_with_head(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert stamp.commit_to_record(repo) == head
    # the benchmark's own outputs do not make the tree dirty
    (repo / "bench" / "RESULTS.md").write_text("# Benchmark results\n\nnew table\n")
    assert stamp.commit_to_record(repo) == head


def test_a_dirty_tree_is_refused_or_marked(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "srgan" / "train.py").write_text("STEP = 2\n")
    with pytest.raises(stamp.DirtyTreeError, match=r"srgan/train\.py.*Commit or stash"):
        stamp.commit_to_record(repo)
    assert stamp.commit_to_record(repo, allow_dirty=True) == f"{head}+dirty"
    monkeypatch.setenv(stamp.ALLOW_DIRTY, "1")
    assert stamp.commit_to_record(repo) == f"{head}+dirty"


def test_a_table_is_current_until_its_code_changes(repo: Path) -> None:
    measured = _git(repo, "rev-parse", "HEAD")
    _record(repo, "tiling", measured)
    _commit(repo, "record the tiling table")
    (repo / "srgan" / "train.py").write_text("STEP = 2\n")  # not code the tiling table measures
    _commit(repo, "change training")
    (tiling,) = stamp.check(repo / "bench" / "RESULTS.md", repo)
    assert tiling.current and tiling.commits_since == 0

    (repo / "datasets" / "tiling.py").write_text("TILE = 2\n")
    _commit(repo, "change tiling")
    (tiling,) = stamp.check(repo / "bench" / "RESULTS.md", repo)
    assert not tiling.current
    assert tiling.commits_since == 1 and tiling.changed_files == ("datasets/tiling.py",)
    assert "1 commit(s) since changed datasets/tiling.py" in tiling.describe()


def test_dirty_unknown_and_missing_stamps_are_listed(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    _record(repo, "training", f"{head}+dirty")
    _record(repo, "quality", "0" * 40)
    path = repo / "bench" / "RESULTS.md"
    path.write_text(path.read_text() + "\n## Hand-made\n\n| b |\n|---|\n| 2 |\n")
    unstamped = "\n<!-- bench:datapath -->\n| c |\n|---|\n<!-- /bench:datapath -->\n"
    path.write_text(path.read_text() + unstamped)
    ages = {age.block: age for age in stamp.check(path, repo)}
    assert not any(age.current for age in ages.values())
    assert "uncommitted changes" in ages["training"].describe()
    assert "not in this history" in ages["quality"].describe()
    assert "names no commit" in ages["datapath"].describe()
    assert stamp.unstamped_tables(path.read_text()) == ["Hand-made (line 19)"]


def test_written_blocks_carry_their_stamp(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results_md("speed", "| a |\n|---|", path, commit="1" * 40)
    update_results_md("speed", "| b |\n|---|", path, commit="2" * 40)
    assert stamp.recorded_blocks(path.read_text()) == {"speed": "2" * 40}
    assert path.read_text().count("Measured at commit") == 1


def test_bench_check_reports_and_never_fails(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(repo, "tiling", _git(repo, "rev-parse", "HEAD"))
    _commit(repo, "record")
    (repo / "datasets" / "tiling.py").write_text("TILE = 3\n")
    _commit(repo, "change tiling")
    monkeypatch.setattr("bench.check.REPO", repo)
    assert bench_check(["--results", str(repo / "bench" / "RESULTS.md")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 of 1 recorded tables are older than the code they measure:")
    assert "tiling: measured at" in out
