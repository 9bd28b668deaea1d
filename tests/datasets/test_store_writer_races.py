"""Writers racing for one patch store: creating it, committing over each other, a scene
committed while another writer waited for its turn. Every lost race is either absorbed (the
winner's store or scene is used) or a transient :class:`StoreConflictError`, never a success
that did not happen. On S3 (loopback server): a plain Zarr writer whose turn was taken over,
and a refused request in the middle of an append."""

from __future__ import annotations

from pathlib import Path

import pytest
from patch_batches import one_patch

from datasets import icechunk_store
from datasets.errors import (
    PatchStoreError,
    SceneIdConflictError,
    StoreConflictError,
    StoreMismatchError,
    is_transient,
)
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
    first = PatchStoreWriter(store, params).append_scene(
        "scene-1", "EPSG:32633", [one_patch()], source="/data/a"
    )
    late = PatchStoreWriter(store, params)
    monkeypatch.setattr(late, "has_scene", lambda scene_id, source=None: False)
    again = late.append_scene("scene-1", "EPSG:32633", [one_patch()], source="/data/a")
    assert again == AppendResult("scene-1", 0, True, first.version)
    assert store_version(store) == first.version and store_info(store).n_patches["train"] == 1
    # the same id from another source, committed meanwhile: refused inside the turn as well
    with pytest.raises(SceneIdConflictError) as err:
        late.append_scene("scene-1", "EPSG:32633", [one_patch()], source="/data/b")
    assert f"'scene-1' is already in patch store {store}, tiled from /data/a;" in str(err.value)
    assert store_version(store) == first.version


def test_a_store_made_meanwhile_by_another_writer_is_checked_in_the_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer made before its store existed: when another writer creates the store first,
    with other parameters or as something that is not a patch store, the append refuses it
    inside its turn, naming the store, and writes nothing."""
    import zarr

    store = str(tmp_path / "s")
    late = PatchStoreWriter(store, store_params(TilingParams(patch_size=P, scale=4)))
    other = PatchStoreWriter(store, store_params(TilingParams(patch_size=P, scale=2)))
    first = other.append_scene("scene-1", "EPSG:32633", [one_patch(scale=2)])
    with pytest.raises(StoreMismatchError) as err:
        late.append_scene("scene-2", "EPSG:32633", [one_patch()])
    assert str(err.value).startswith(f"patch store {store} was written with other parameters")
    assert store_version(store) == first.version and store_info(store).scenes == ("scene-1",)

    foreign = str(tmp_path / "foreign.zarr")
    late = PatchStoreWriter(
        foreign, store_params(TilingParams(patch_size=P, scale=4)), backend="zarr"
    )
    zarr.open_group(foreign, mode="w", zarr_format=3).attrs["made_by"] = "someone else"
    monkeypatch.setattr(late, "has_scene", lambda scene_id, source=None: False)  # made meanwhile
    with pytest.raises(PatchStoreError) as refused:
        late.append_scene("scene-1", "EPSG:32633", [one_patch()])
    assert str(refused.value).startswith(f"{foreign} is a Zarr group but not an s2-srgan")
    assert dict(zarr.open_group(foreign, mode="r").attrs) == {"made_by": "someone else"}


BUCKET = "s2sr-writer-races"


@pytest.fixture
def s3_store(s3_server: dict[str, str], tmp_path: Path) -> str:
    """A fresh store URI in a bucket of the loopback S3 server."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return f"s3://{BUCKET}/{tmp_path.name}/patches"


def test_a_plain_zarr_writer_whose_turn_was_taken_over_does_not_commit(
    s3_store: str, s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain Zarr append on S3 renews its lease before it publishes: when another writer
    took the turn over while this one was writing (its lease expired in a stall), the append
    is a transient conflict and the scene stays invisible."""
    import s3fs

    from datasets.lease import Lease

    params = store_params(TilingParams(patch_size=P, scale=4))
    writer = PatchStoreWriter(s3_store, params, backend="zarr", storage_options=s3_server)
    first = writer.append_scene("scene-1", "EPSG:32633", [one_patch()])
    lease_uri = s3_store.replace("/patches", "/.patches.lease")
    write_batch = writer._write_batch

    thieves: list[Lease] = []

    def stalled(group: object, start: int, batch: object) -> int:
        s3fs.S3FileSystem(**s3_server, skip_instance_cache=True).rm(lease_uri)  # expired...
        thief = Lease(lease_uri, "flow run thief", what="the test", storage_options=s3_server)
        thieves.append(thief.acquire())  # ...and taken
        return write_batch(group, start, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_write_batch", stalled)
    try:
        with pytest.raises(StoreConflictError, match=r"taken over.*flow run thief") as err:
            writer.append_scene("scene-2", "EPSG:32633", [one_patch()])
    finally:  # the thief's heartbeat must not outlive the test
        for thief in thieves:
            thief.release()
    assert len(thieves) == 1
    assert str(err.value).endswith("; run the append again") and is_transient(err.value)
    assert store_info(s3_store, s3_server).scenes == ("scene-1",)
    assert store_version(s3_store, s3_server) == first.version


def test_s3_failures_inside_an_append_name_the_store_and_endpoint(
    s3_store: str, s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request refused while a scene is written (s3fs raises PermissionError for a 403) is
    reported as access denied to this store at this endpoint, not as a bare traceback; the
    skip after a lost race reads the committed version with the store's own options."""
    from datasets.storage_errors import BucketMissingError, StorageAccessDenied
    from datasets.store_writer import AppendResult

    params = store_params(TilingParams(patch_size=P, scale=4))
    writer = PatchStoreWriter(s3_store, params, storage_options=s3_server)
    first = writer.append_scene("scene-1", "EPSG:32633", [one_patch()])

    def refused(group: object, start: int, batch: object) -> int:
        raise PermissionError("Access Denied")

    monkeypatch.setattr(writer, "_write_batch", refused)
    with pytest.raises(StorageAccessDenied) as err:
        writer.append_scene("scene-2", "EPSG:32633", [one_patch()])
    endpoint = s3_server["endpoint_url"]
    assert str(err.value).startswith(f"access to {s3_store} denied (403) at {endpoint} with")
    monkeypatch.setattr(writer, "has_scene", lambda scene_id, source=None: False)
    again = writer.append_scene("scene-1", "EPSG:32633", [one_patch()])
    assert again == AppendResult("scene-1", 0, True, first.version)
    # a new store's bucket must exist before anything is written (nothing creates buckets)
    missing = "s3://s2sr-no-such-bucket/patches"
    with pytest.raises(BucketMissingError) as gone:
        PatchStoreWriter(missing, params, storage_options=s3_server)
    assert str(gone.value).startswith(f"bucket 's2sr-no-such-bucket' of {missing} does not exist")
