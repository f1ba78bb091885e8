"""Configuration errors name the key that is wrong."""

from __future__ import annotations

import json

import pytest

from rltrader.config import Config, load_config, parse_config
from rltrader.errors import ConfigError


def test_shipped_default_config_is_valid_and_matches_the_model_defaults():
    shipped = load_config()
    assert shipped.model_copy(update={"profiles": {}}) == Config()  # profiles are extras the file ships
    assert {"ultra_fast", "quick", "smoke"} <= set(shipped.profiles)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"featurs": {}}, r"featurs: unknown key"),
        ({"features": {"rsi_period": 1}}, r"features.rsi_period: Input should be greater than or equal to 2"),
        ({"features": {"macd": {"fast": 30, "slow": 26}}}, r"features.macd: macd.fast must be smaller"),
        ({"splits": {"train": 0.8, "validation": 0.15, "test": 0.15}}, r"splits: train \+ validation \+ test must be 1.0"),
        ({"env": {"window_size": "big"}}, r"env.window_size: Input should be a valid integer"),
        ({"data": {"sep": "||"}}, r"data: sep must be one character"),
        ({"account": {"currency": "dollars"}}, r"account.currency: must be a three-letter currency code such as USD"),
        ({"env": {"sizing": "percent"}}, r"env.sizing: Input should be 'equity_fraction', 'lots' or 'units'"),
    ],
)
def test_invalid_values_name_their_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="test.yaml")


def test_bad_yaml_and_missing_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("features:\n  rsi_period: [14\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d"):
        load_config(broken)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_tab_separator_is_spelled_out():
    assert parse_config({"data": {"sep": "tab"}}).data.sep == "\t"


def test_bundles_and_runs_written_before_the_learning_study_read_as_they_were_written():
    """A bundle's features (and a run fingerprint's settings) without the keys the study added compute what
    their model trained on: no calendar harmonics, no signed volume, no risk aversion, raw-look patience."""
    from rltrader.config import ADDED_SINCE, EnvConfig, FeatureConfig, as_written_before
    from rltrader.features.definitions import feature_program
    from rltrader.training.run_state import settings_as_trained

    old_features = FeatureConfig.model_validate(as_written_before("features", {}))
    names = feature_program(old_features, has_volume=True, has_spread=True).names
    assert len(names) == 18 and "signed_volume" not in names and "time_of_day_2_sin" not in names
    study = FeatureConfig.model_validate(as_written_before("features", {"calendar_harmonics": 3, "signed_volume": True}))
    names = feature_program(study, has_volume=True, has_spread=True).names
    assert len(names) == 27 and not any(name.startswith("pattern_") for name in names)  # written before issue 47
    assert len(feature_program(FeatureConfig(), has_volume=True, has_spread=True).names) == 27 + 16
    assert EnvConfig.model_validate(as_written_before("env", {})).risk_aversion == 0.0
    assert as_written_before("features", {"calendar_harmonics": 2})["calendar_harmonics"] == 2  # written: kept
    completed = settings_as_trained({"training": {"algorithm": "recurrent"}, "features": {}, "env": {"sizing": "units"}})
    assert all(completed[section][key] == value for section, keys in ADDED_SINCE.items() for key, value in keys.items()
               if not isinstance(value, dict))
    # nested keys complete key by key: a written policy keeps its sizes and reads as having had no skip
    written = settings_as_trained({"training": {"policy": {"lstm_hidden_size": 32}}})["training"]["policy"]
    assert written == {"lstm_hidden_size": 32, "observation_skip": False}


def test_a_feed_forward_run_written_before_the_observation_skip_still_resumes():
    """The skip is a recurrent policy's: a feed-forward run's fingerprint leaves it out on both sides."""
    from rltrader.config import load_config
    from rltrader.training.run_state import fingerprint, settings_as_trained

    today = fingerprint(load_config().with_overrides({"training.algorithm": "feedforward"}), "sha")["config"]
    written = json.loads(json.dumps(today))
    assert "observation_skip" not in written["training"]["policy"]
    assert settings_as_trained(written) == today  # as a run written before the key reads: nothing differs
    recurrent = fingerprint(load_config(), "sha")["config"]
    assert recurrent["training"]["policy"]["observation_skip"] is True
