"""Writers racing for one patch store: creating it, committing over each other, a scene
committed while another writer waited for its turn. Every lost race is either absorbed (the
winner's store or scene is used) or a transient :class:`StoreConflictError`, never a success
that did not happen."""

from __future__ import annotations

from pathlib import Path

import pytest
from patch_batches import one_patch

from datasets import icechunk_store
from datasets.errors import StoreConflictError, is_transient
from datasets.patch_store import PatchStoreWriter, store_info, store_version
from datasets.tiling import store_params
from datasets.tiling_params import TilingParams

P = 64


def test_losing_the_race_to_create_an_icechunk_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first appends to a new Icechunk store: the one whose creation fails because the
    other created it meanwhile opens that repository and commits; when nothing was created,
    the error says to run the append again."""
    import icechunk

    real = icechunk_store.open_or_create
    calls: list[tuple[str, object]] = []
    options: dict[str, str] = {}

    def racing(uri: str, storage_options: object = None) -> object:
        calls.append((uri, storage_options))
        if len(calls) == 1:
            real(uri, None)  # the other writer wins
            raise icechunk.IcechunkError("repository already exists")
        return real(uri, None)

    real_exists = icechunk_store.exists
    asked: list[tuple[str, object]] = []

    def exists(uri: str, storage_options: object = None) -> bool:
        if len(calls) == 1:  # asked after losing the race
            asked.append((uri, storage_options))
        return real_exists(uri, None)

    monkeypatch.setattr(icechunk_store, "open_or_create", racing)
    monkeypatch.setattr(icechunk_store, "exists", exists)
    store = str(tmp_path / "raced")
    params = store_params(TilingParams(patch_size=P, scale=4))
    writer = PatchStoreWriter(store, params, backend="icechunk", storage_options=options)
    assert writer.append_scene("scene-1", "EPSG:32633", [one_patch()]).n_patches == 1
    assert calls == [(store, options), (store, options)]
    assert asked == [(store, options)]
    assert store_info(store).scenes == ("scene-1",)

    def failing(uri: str, storage_options: object = None) -> object:
        raise icechunk.IcechunkError("bucket busy\nsecond line")

    monkeypatch.setattr(icechunk_store, "open_or_create", failing)
    other = str(tmp_path / "never")
    with pytest.raises(StoreConflictError) as err:
        PatchStoreWriter(other, params, backend="icechunk").append_scene(
            "scene-1", "EPSG:32633", [one_patch()]
        )
    assert str(err.value) == (
        f"patch store {other} could not be created (bucket busy); if another writer is "
        "creating it right now, run the append again"
    )
    assert is_transient(err.value)


def test_an_append_overwritten_by_another_writer_is_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its commit a writer reads the manifest back: its scene must be there with the
    patches and the source it wrote. A missing entry, another count or another source means
    another writer committed over it: a transient conflict, never a success."""
    from datasets.store_version import Manifest, SceneEntry
    from datasets.store_writer import AppendResult

    store = str(tmp_path / "s")
    writer = PatchStoreWriter(store, store_params(TilingParams(patch_size=P, scale=4)))
    written = AppendResult("scene-1", 2, False, "v1")

    def entry(count: int, source: str | None) -> SceneEntry:
        return SceneEntry("scene-1", 0, count, count, 0, "EPSG:32633", "1", source=source)

    def committed(*entries: SceneEntry) -> None:
        monkeypatch.setattr(writer, "committed", lambda: Manifest(scenes=entries))

    committed(entry(2, "/a"))
    writer._check_committed("scene-1", "/a", written)  # its own commit: fine
    for entries in [(), (entry(3, "/a"),), (entry(2, "/b"),)]:
        committed(*entries)
        with pytest.raises(StoreConflictError) as err:
            writer._check_committed("scene-1", "/a", written)
        assert str(err.value) == (
            f"scene scene-1 was written to patch store {store} but is not in its committed "
            "manifest: another writer committed over it. Appends are idempotent: run it again "
            "(the tile-sentinel2 flow retries by itself)"
        )
        assert is_transient(err.value)


def test_a_scene_committed_while_waiting_for_the_turn_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's check found the scene absent, but another writer committed it before this
    one's turn: the writer sees it in the manifest, writes nothing and reports it skipped."""
    from datasets.store_writer import AppendResult

    store = str(tmp_path / "s")
    params = store_params(TilingParams(patch_size=P, scale=4))
    first = PatchStoreWriter(store, params).append_scene("scene-1", "EPSG:32633", [one_patch()])
    late = PatchStoreWriter(store, params)
    monkeypatch.setattr(late, "has_scene", lambda scene_id, source=None: False)
    again = late.append_scene("scene-1", "EPSG:32633", [one_patch()])
    assert again == AppendResult("scene-1", 0, True, first.version)
    assert store_version(store) == first.version and store_info(store).n_patches["train"] == 1
