import json

import pytest

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
