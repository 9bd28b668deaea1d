import pytest
import yaml

from srgan.config import ConfigError, TrainingConfig, load_config, preset_names


def test_presets_load():
    names = preset_names()
    assert {"cpu-tiny", "s2-10m-rgbn-x4", "s2-20m-6band-x2"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), TrainingConfig)
    assert load_config("s2-20m-6band-x2").in_bands == 6


def test_overrides_merge_nested():
    cfg = load_config("cpu-tiny", {"generator": {"channels": 8}, "schedule": {"max_iterations": 3}})
    assert cfg.generator.channels == 8
    assert cfg.generator.n_blocks == load_config("cpu-tiny").generator.n_blocks
    assert cfg.schedule.max_iterations == 3


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config("cpu-tiny", {"generator": {"chanels": 8}})
    assert "generator.chanels" in str(err.value)
    assert "channels" in str(err.value)


def test_bad_choice_lists_choices():
    with pytest.raises(ConfigError, match=r"generator.name.*'srresnet', 'rrdbnet' or 'stochastic'"):
        load_config("cpu-tiny", {"generator": {"name": "unet"}})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"losses": {"adversarial": "wasserstein"}}, "r1_gamma > 0"),
        ({"losses": {"perceptual_weight": 0.1}}, "perceptual_weights_path"),
        ({"losses": {"l1_weight": 0, "sam_weight": 0}}, "content loss weights are 0"),
        ({"losses": {"l1_weight": -1}}, "losses.l1_weight"),
        ({"data": {"scale": 3}}, "data.scale"),
        ({"validation": {"preview_bands": [7]}}, "preview_bands"),
        ({"trainer": {"logger": "wandb"}}, r"trainer.logger.name: .*'csv', 'tensorboard' or"),
        ({"trainer": {"logger": {"tracking_uri": "http://x"}}}, "tracking_uri is for name: mlflow"),
        ({"trainer": {"logger": {"name": "mlflow", "uri": "x"}}}, "valid keys here: name, track"),
        ({"schedule": {"max_iterations": None}, "trainer": {"max_epochs": None}}, "max_iterations"),
        (
            {
                "data": {"bands": ["B08"]},
                "validation": {"preview_bands": [0, 0, 0], "best_metric": "sam"},
            },
            "best_metric: sam needs at least 2 bands",
        ),
        (
            {
                "data": {"bands": ["B08"]},
                "validation": {"preview_bands": [0, 0, 0]},
                "optim": {"plateau_metric": "sam"},
            },
            "plateau_metric: sam needs at least 2 bands",
        ),
    ],
)
def test_invalid_values_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("cpu-tiny", overrides)


def test_wasserstein_with_r1_accepted():
    cfg = load_config("cpu-tiny", {"losses": {"adversarial": "wasserstein", "r1_gamma": 1.0}})
    assert cfg.losses.adversarial == "wasserstein"


def test_yaml_file_and_missing_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "schedule": {"max_iterations": 5},
                "data": {"bands": ["B04"]},
                "validation": {"preview_bands": [0]},
            }
        )
    )
    cfg = load_config(path)
    assert cfg.schedule.max_iterations == 5 and cfg.in_bands == 1
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*cpu-tiny"):
        load_config("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_logger_takes_a_plain_name_or_a_section():
    assert load_config("cpu-tiny", {"trainer": {"logger": "tensorboard"}}).trainer.logger.name == (
        "tensorboard"
    )
    cfg = load_config(
        "cpu-tiny", {"trainer": {"logger": {"name": "mlflow", "tracking_uri": "http://h:5000"}}}
    )
    assert (cfg.trainer.logger.tracking_uri, cfg.trainer.logger.experiment) == (
        "http://h:5000",
        "s2-srgan",
    )
    assert TrainingConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_config_round_trips_through_json():
    cfg = load_config("s2-10m-rgbn-x4")
    assert TrainingConfig.model_validate(cfg.model_dump(mode="json")) == cfg
