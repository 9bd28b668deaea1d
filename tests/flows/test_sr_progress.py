"""The ``super-resolve`` task's progress artifact: tiles done of total, at least every 10 s.

The Prefect calls are replaced by recorders and the clock by a counter (no server, no waiting).
Broken by hand once: the time rule removed from ``TileProgressArtifact`` (the slow-scene test
sees no update at 6 s).
"""

import itertools
import logging
from uuid import uuid4

import pytest

import tasks.sr_progress
from srgan.tiled import TiledSuperResolver
from tasks.sr_progress import TileProgressArtifact


@pytest.fixture
def updates(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(tasks.sr_progress, "create_progress_artifact", lambda *a, **k: uuid4())
    monkeypatch.setattr(
        tasks.sr_progress, "update_progress_artifact", lambda _id, progress: calls.append(progress)
    )
    return calls


def test_slow_scene_updates_every_few_seconds_and_ends_at_100(updates, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(tasks.sr_progress.time, "monotonic", lambda: clock[0])
    progress = TileProgressArtifact("scene", logging.getLogger("test"))
    for done in range(1, 1001):  # 1000 tiles, 0.1 % each, one every 2 s
        clock[0] += 2.0
        progress(done, 1000)
    assert updates[0] == 0.3 and updates[-1] == 100.0  # the first after 6 s (≥ 5 s)
    assert all(b - a <= 0.3 + 1e-9 for a, b in itertools.pairwise(updates))


def test_fast_scene_updates_per_5_percent(updates):
    progress = TileProgressArtifact("scene", logging.getLogger("test"))
    for done in range(1, 41):
        progress(done, 40)
    assert updates == [5.0 * k for k in range(1, 21)]


def test_the_tiler_reports_tiles_done_after_every_batch():
    import torch

    seen: list[tuple[int, int]] = []
    tiler = TiledSuperResolver(
        lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2), 2, 16, 4, 3,
        lambda d, t: seen.append((d, t)),
    )  # fmt: skip
    tiler.run(torch.rand(1, 40, 40))
    assert seen == [(3, 9), (6, 9), (9, 9)]
