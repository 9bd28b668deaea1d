"""Checkpoints record their training data's lineage (store, version, degradation, run folder).

Broken by hand once: ``TrainingLineage`` left out of ``build_trainer``'s callbacks (the first
test finds no lineage in the checkpoint).
"""

import torch
from toy_data import TINY_RUN

from datasets.degradation import Degradation
from datasets.patch_store import store_info
from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene
from srgan.config import deep_merge, load_config
from srgan.data import datamodule_for
from srgan.inference import load_inference_model
from srgan.lineage import LINEAGE_KEY, CheckpointLineage, read_lineage
from srgan.train import fit


def test_a_checkpoint_trained_on_a_patch_store_records_its_degradation(bigearthnet_dirs, tmp_path):
    store = str(tmp_path / "patches.zarr")
    degradation = Degradation(mtf=0.25, band_mtf={"B08": 0.35})
    for scene in bigearthnet_dirs[:3]:
        tile_scene(
            str(scene),
            store,
            patch_size=32,
            degradation=degradation,
            split=SplitPolicy(mode="block", block_size=64),
        )
    config = load_config(
        "cpu-tiny",
        deep_merge(TINY_RUN, {"data": {"store": store}, "trainer": {"accelerator": "cpu"}}),
    )
    result = fit(config, datamodule_for(config.data), tmp_path / "runs" / "night-3")
    checkpoint = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    lineage = read_lineage(checkpoint)
    info = store_info(store)
    assert checkpoint[LINEAGE_KEY]["degradation"] == info.degradation
    assert lineage.store == store and lineage.store_version == info.version
    assert lineage.run_key == "night-3"
    used, source = load_inference_model(result.last_checkpoint).lineage.qa_degradation()
    assert source == "checkpoint" and used == degradation


def test_older_or_real_lr_checkpoints_fall_back_to_the_default_and_say_so():
    used, source = read_lineage({}).qa_degradation()
    assert used == Degradation() and "records no degradation" in source
    real = CheckpointLineage(degradation={"method": "real", "lr_resolution": 20.0})
    used, source = real.qa_degradation()
    assert used == Degradation() and "real" in source
    broken = CheckpointLineage(degradation={"method": "gaussian_area", "mtf": 7})
    assert "unreadable" in broken.qa_degradation()[1]
