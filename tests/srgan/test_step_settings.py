"""Step settings: a config value wins, then what was measured on this machine, then built-in.

Broken by hand once each: ``resolve_step_settings`` taking the measurement before the config
value fails ``test_config_value_wins_over_a_measurement``; ``tune_step`` without its
``restore_rng_states`` fails ``test_trial_measures_open_settings_caches_them_and_leaves_rng_alone``.
"""

from __future__ import annotations

import pytest
import torch

from srgan.config import TrainingConfig
from srgan.step_settings import KNOBS, resolve_step_settings, step_key
from srgan.step_trial import tune_step
from srgan.train import fit
from srgan.tuning_cache import TuningCache

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2SR_TUNING", str(tmp_path / "tuning.json"))


def _measure(config: TrainingConfig, **settings) -> None:
    TuningCache().put(step_key(config, CPU), settings)


def test_without_measurement_and_config_values_the_built_in_choices_hold(make_config):
    settings = resolve_step_settings(make_config(), CPU)
    assert (settings.channels_last, settings.fused, settings.retain_freed_memory) == (True,) * 3
    assert (settings.compile, settings.threads, settings.precision) == (False, None, "32-true")
    assert set(settings.sources.values()) == {"built-in"}


def test_config_value_wins_over_a_measurement(make_config):
    config = make_config(trainer={"channels_last": True}, optim={"fused": None})
    _measure(config, channels_last=False, fused=False, precision="bf16-mixed")
    settings = resolve_step_settings(config, CPU)
    assert (settings.channels_last, settings.sources["channels_last"]) == (True, "config")
    assert (settings.fused, settings.sources["fused"]) == (False, "measured")
    assert (settings.precision, settings.sources["precision"]) == ("bf16-mixed", "measured")
    assert settings.measured_at is not None
    assert "fused=False (measured)" in settings.describe()


def test_measurements_belong_to_their_config_and_can_be_switched_off(make_config):
    measured = make_config(data={"batch_size": 2})
    _measure(measured, fused=False)
    assert resolve_step_settings(make_config(), CPU).sources["fused"] == "built-in"
    assert resolve_step_settings(measured, CPU).fused is False
    off = make_config(data={"batch_size": 2}, trainer={"autotune": "off"})
    assert resolve_step_settings(off, CPU).fused is True


def test_trial_measures_open_settings_caches_them_and_leaves_rng_alone(make_config):
    config = make_config(
        trainer={"retain_freed_memory": True, "precision": "32-true", "threads": 1}
    )
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    trial = tune_step(config, warmup=1, iterations=2, rounds=1)
    assert torch.equal(torch.rand(3), expected)
    tried = {
        k for run in trial.runs for k, v in run.settings.items() if v != trial.runs[0].settings[k]
    }
    assert tried and tried <= {"channels_last", "fused"}  # config values are never tried
    assert all(run.seconds_per_iteration > 0 for run in trial.runs)
    resolved = resolve_step_settings(config, CPU)
    assert resolved.sources == {
        **dict.fromkeys(KNOBS, "built-in"),
        "channels_last": "measured",
        "fused": "measured",
        "retain_freed_memory": "config",
        "precision": "config",
        "compile": "built-in",
        "threads": "config",
    }
    assert (resolved.channels_last, resolved.fused) == (
        trial.settings.channels_last,
        trial.settings.fused,
    )


def test_a_trial_fit_measures_first_and_reports_its_settings(make_config, datamodule, tmp_path):
    config = make_config(
        trainer={"autotune": "trial", "precision": "32-true", "retain_freed_memory": False},
        optim={"fused": True},
    )
    result = fit(config, datamodule, tmp_path / "run", final_validation=False)
    assert result.step_settings is not None
    assert result.step_settings.sources["channels_last"] == "measured"
    assert result.step_settings.sources["fused"] == "config"
    assert result.step_settings.retain_freed_memory is False
    assert TuningCache().get(step_key(config, CPU)) is not None
