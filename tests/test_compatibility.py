"""What rltrader 0.1 wrote keeps working: its run directories resume, its models load, its summaries compare.

``tests/fixtures/state_v1/`` was written by the code before the engine moved to
``rltrader.engine`` and the run records were typed (run state version 1, the cache switch
as ``cache.enabled``), with the tiny config next to it:

- ``interrupted/``: iteration 1 of 2 finished, iteration 2 stopped after its checkpoint at
  256 timesteps (its model zips name ``rltrader.training.engine.FusedLstmPolicy``);
- ``finished/``: a completed run's ``run_state.json`` and ``optimization_summary.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rltrader.app.cli import main
from rltrader.config import ADDED_SINCE, added_since_overrides, load_config, parse_config
from rltrader.errors import UserInputError
from rltrader.records import RunSummary
from rltrader.training.run_state import STATE_VERSION, RunState
from rltrader.training.trainer import Trainer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "state_v1"
AS_BEFORE_THE_STUDY = {
    **added_since_overrides(),
    # the defaults the study changed (issue 37), as the fixture's run trained with them
    "training.algorithm": "recurrent", "env.reward_scale": 100.0, "training.learning_rate": 0.0003,
    "training.gamma": 0.99, "training.gae_lambda": 0.95, "training.ent_coef": 0.01,
    "training.phases.0.learning_rate": 0.0003, "training.phases.0.ent_coef": 0.02,
    # and those the recurrent default changed (issue 47)
    "training.n_epochs": 10, "training.phases.0.n_epochs": 10,
}
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "interrupted", run_dir)
    return run_dir


@pytest.fixture(scope="module")
def fixture_config(tmp_path_factory):
    return load_config(FIXTURES / "config.yaml").with_overrides(
        {"cache.dir": str(tmp_path_factory.mktemp("compat-cache"))})


def test_a_version_1_run_directory_resumes_where_it_stopped(old_run, fixture_config):
    before = json.loads((old_run / "run_state.json").read_text())
    assert before["version"] == 1 and before["fingerprint"]["config"]["cache"] == {"enabled": True}
    finished = (old_run / "iterations" / "iter_00" / "model.zip").read_bytes()

    # it traded fixed units, as every run did before position sizing, with the features and reward of before
    # the learning study: today's defaults are refused by name, and its own settings resume it
    with pytest.raises(UserInputError, match=r"env\.reward_scale was 100\.0, now 300\.0"):
        Trainer(fixture_config, SAMPLE, old_run).open()
    with pytest.raises(UserInputError, match=r"env\.sizing was 'units', now 'equity_fraction'"):
        Trainer(fixture_config.with_overrides(AS_BEFORE_THE_STUDY), SAMPLE, old_run).open()
    summary = Trainer(fixture_config.with_overrides({"env.sizing": "units", **AS_BEFORE_THE_STUDY}), SAMPLE,
                      old_run).run()

    assert summary.optimization_completed and [it.iteration for it in summary.iterations] == [0, 1]
    after = json.loads((old_run / "run_state.json").read_text())
    assert after["version"] == STATE_VERSION
    old = before["iterations"][0]
    added_since = {"candidate": None, "candidates": None, "candidates_timesteps_total": None,
                   "validations": [look | {"total_return": None, "wall_seconds": None} for look in old["validations"]]}
    assert after["iterations"][0] == old | added_since  # iteration 1 kept as it was, new fields empty
    assert after["iterations"][1]["resumed_at"] == 256  # iteration 2 went on from the old checkpoint
    assert after["fingerprint"]["config"]["optimizations"]["cache_environments"] is True
    assert (old_run / "iterations" / "iter_00" / "model.zip").read_bytes() == finished
    assert not (old_run / "checkpoints" / "iter_01").exists()


def test_a_version_1_run_is_still_refused_under_other_settings(old_run, fixture_config):
    with pytest.raises(UserInputError, match=r"optimizations\.cache_environments was True, now False"):
        Trainer(fixture_config.with_overrides({"optimizations.cache_environments": False, "env.sizing": "units",
                                               **AS_BEFORE_THE_STUDY}), SAMPLE, old_run).open()


def test_a_model_saved_before_the_move_loads_in_stock_sb3_contrib_and_evaluates(old_run, tmp_path, capsys):
    from sb3_contrib import RecurrentPPO

    from rltrader.engine import FusedLstmPolicy

    zip_path = old_run / "best_model.zip"
    model = RecurrentPPO.load(zip_path, device="cpu")
    assert type(model.policy) is FusedLstmPolicy  # the class the zip names resolves through the old module
    # its config file predates calendar harmonics and signed volume: the error says what to pin
    common = ["--data_path", str(SAMPLE), "--cache_dir", str(tmp_path / "cache"), "--out", str(tmp_path / "eval")]
    assert main(["evaluate", "--model", str(zip_path), "--config", str(FIXTURES / "config.yaml"), *common]) == 2
    assert "{calendar_harmonics: 1, signed_volume: false, move_patterns: 0}" in capsys.readouterr().err
    pinned = yaml.safe_load((FIXTURES / "config.yaml").read_text())
    pinned.setdefault("features", {}).update(ADDED_SINCE["features"])
    (tmp_path / "pinned.yaml").write_text(yaml.safe_dump(pinned))
    assert main(["evaluate", "--model", str(zip_path), "--config", str(tmp_path / "pinned.yaml"), *common]) == 0
    assert "buy_and_hold" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["split"] == "validation"


def test_version_1_summaries_and_states_load_as_records(tmp_path, capsys):
    raw = json.loads((FIXTURES / "finished" / "optimization_summary.json").read_text())
    summary = RunSummary.model_validate(raw)
    assert _contains(summary.to_json(), raw)  # nothing lost, nothing renamed (new fields are added)
    state = RunState.parse(json.loads((FIXTURES / "finished" / "run_state.json").read_text()), tmp_path)
    assert state.completed and state.best.score == raw["best_model"]["score"]
    assert main(["compare", "--original", str(FIXTURES / "finished"), "--optimized",
                 str(FIXTURES / "finished")]) == 0
    assert "speedup 1.00x; quality not shown" in capsys.readouterr().out  # one seed proves nothing


def test_a_config_file_with_the_old_cache_switch_still_loads(tmp_path):
    raw = yaml.safe_load((FIXTURES / "config.yaml").read_text())
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({**raw, "cache": {"enabled": False, "dir": "elsewhere"}}))
    config = load_config(path)
    assert config.optimizations.cache_environments is False and str(config.cache.dir) == "elsewhere"
    from rltrader.errors import ConfigError

    with pytest.raises(ConfigError, match="cache.enabled and optimizations.cache_environments disagree"):
        parse_config({"cache": {"enabled": False}, "optimizations": {"cache_environments": True}})


def _contains(whole: object, part: object) -> bool:
    """Whether ``whole`` holds every key and value of ``part`` (recursively)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(key in whole and _contains(whole[key], value)
                                               for key, value in part.items())
    return whole == part
