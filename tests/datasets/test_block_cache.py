"""GDAL's block cache, capped while scenes are read: one cap for all threads; the user's wins."""

import threading

import rasterio
from gdal_probe import cache_max

from datasets.scenes import GDAL_CACHE_BYTES, block_cache, bounded_block_cache

MIB = 2**20


def test_overlapping_users_in_threads_share_the_cache_and_the_last_lifts_the_cap(monkeypatch):
    """Scenes tiled in parallel threads share GDAL's one cache, capped per scene at work; the
    first to finish must not lift the cap from under the other, and the last restores GDAL's
    cap from before."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = cache_max()
    assert before != GDAL_CACHE_BYTES
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with bounded_block_cache():
            seen["first"] = cache_max()
            first_in.set()
            second_in.wait(timeout=30)
        first_out.set()

    def second() -> None:
        first_in.wait(timeout=30)
        with bounded_block_cache():
            seen["both"] = cache_max()
            second_in.set()
            first_out.wait(timeout=30)
            seen["second, after the first ended"] = cache_max()
        seen["after both"] = cache_max()

    threads = [threading.Thread(target=f) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == {
        "first": GDAL_CACHE_BYTES,
        "both": 2 * GDAL_CACHE_BYTES,
        "second, after the first ended": GDAL_CACHE_BYTES,
        "after both": before,
    }


def test_uses_nested_in_one_thread_count_once(monkeypatch):
    """A COG conversion inside a super-resolution is the same scene's work: one cap, and the
    outer use keeps it when the inner one ends."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = cache_max()
    with bounded_block_cache():
        with bounded_block_cache():
            assert cache_max() == GDAL_CACHE_BYTES
        assert cache_max() == GDAL_CACHE_BYTES
    assert cache_max() == before


def test_a_cap_the_user_set_wins(monkeypatch):
    """``GDAL_CACHEMAX`` in the environment (GDAL read it when the process started) or in an
    enclosing ``rasterio.Env`` is the user's choice: left as it is."""
    before = cache_max()
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    with bounded_block_cache():
        assert cache_max() == before
    monkeypatch.delenv("GDAL_CACHEMAX")
    with rasterio.Env(GDAL_CACHEMAX=100 * MIB):
        with bounded_block_cache():
            assert cache_max() == 100 * MIB
        assert cache_max() == 100 * MIB
    assert cache_max() == before


def test_the_cap_never_exceeds_gdals_own(monkeypatch):
    """On a machine whose 5 % of memory is less than the per-scene cap, GDAL's stays."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = cache_max()
    monkeypatch.setattr(block_cache, "GDAL_CACHE_BYTES", 2 * before)
    with bounded_block_cache():
        assert cache_max() == before
    monkeypatch.setattr(block_cache, "GDAL_CACHE_BYTES", before // 2)
    with bounded_block_cache():
        assert cache_max() == before // 2
