"""The deployments ``rltrader serve`` registers and the ``prefect.yaml`` for work pools (no server needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.serve import (
    MODE_DEPLOYMENT,
    PAPER_DEPLOYMENT,
    RETRAIN_DEPLOYMENT,
    TRAIN_DEPLOYMENT,
    TUNE_DEPLOYMENT,
    WALK_FORWARD_DEPLOYMENT,
    build_deployments,
)
from rltrader.app.cli import main
from rltrader.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_deployments_carry_absolute_defaults_and_the_configured_schedules(tmp_path):
    config = load_config().with_overrides({"orchestration.mode_schedule.timezone": "Europe/London",
                                           "orchestration.mode_schedule.performance_cron": "30 21 * * 1-5",
                                           "retrain.cron": "45 21 * * 1-5", "retrain.timezone": "Europe/London"})
    train, mode, tune, walk, paper, retrain = build_deployments(
        config, None, PROJECT_ROOT / "data" / "XAUUSDm_15min.csv", tmp_path / "results", tmp_path / "settings.json")
    assert retrain.name == RETRAIN_DEPLOYMENT and retrain.entrypoint == "flows/retrain.py:retrain_model"
    assert retrain.parameters["request"]["name"] == "xauusdm_15min"
    assert retrain.parameters["request"]["results_dir"] == str(tmp_path / "results")
    assert [(s.schedule.cron, s.schedule.timezone) for s in retrain.schedules] == [("45 21 * * 1-5", "Europe/London")]
    assert paper.name == PAPER_DEPLOYMENT and paper.entrypoint == "flows/paper.py:paper_trade"
    assert paper.parameters["bundle"] == str(tmp_path / "results" / "42" / "bundle")
    assert paper.parameters["paper_dir"] == str(tmp_path / "results" / "paper")
    assert [schedule.schedule.interval.total_seconds() for schedule in paper.schedules] == [900.0]
    assert (train.name, mode.name, tune.name, walk.name) == (TRAIN_DEPLOYMENT, MODE_DEPLOYMENT, TUNE_DEPLOYMENT,
                                                             WALK_FORWARD_DEPLOYMENT)
    assert walk.entrypoint == "flows/walkforward.py:walk_forward"
    assert walk.parameters["request"]["settings_file"] == str(tmp_path / "settings.json") and not walk.schedules
    assert tune.entrypoint == "flows/tune.py:tune_study"
    assert tune.parameters["request"]["results_dir"] == str(tmp_path / "results") and not tune.schedules
    assert train.entrypoint == "flows/train.py:train_pipeline"
    assert mode.entrypoint == "flows/mode.py:set_performance_mode"
    assert train.parameters["request"]["results_dir"] == str(tmp_path / "results")
    assert mode.parameters["settings_file"] == str(tmp_path / "settings.json")
    schedules = {s.parameters["mode"]: (s.schedule.cron, s.schedule.timezone) for s in mode.schedules}
    assert schedules == {"performance": ("30 21 * * 1-5", "Europe/London"), "quiet": ("0 7 * * *", "Europe/London")}
    assert not train.schedules


def test_prefect_yaml_matches_the_configured_schedule():
    spec = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    schedule = load_config().orchestration.mode_schedule
    deployments = {deployment["name"]: deployment for deployment in spec["deployments"]}
    assert deployments[TRAIN_DEPLOYMENT]["entrypoint"] == "flows/train.py:train_pipeline"
    assert deployments[TUNE_DEPLOYMENT]["entrypoint"] == "flows/tune.py:tune_study"
    assert deployments[WALK_FORWARD_DEPLOYMENT]["entrypoint"] == "flows/walkforward.py:walk_forward"
    assert deployments[PAPER_DEPLOYMENT]["entrypoint"] == "flows/paper.py:paper_trade"
    assert deployments[PAPER_DEPLOYMENT]["schedules"] == [{"interval": 900}]
    nightly = load_config().retrain
    assert deployments[RETRAIN_DEPLOYMENT]["entrypoint"] == "flows/retrain.py:retrain_model"
    assert deployments[RETRAIN_DEPLOYMENT]["schedules"] == [{"cron": nightly.cron, "timezone": nightly.timezone}]
    crons = {entry["parameters"]["mode"]: (entry["cron"], entry["timezone"])
             for entry in deployments[MODE_DEPLOYMENT]["schedules"]}
    assert crons == {"performance": (schedule.performance_cron, schedule.timezone),
                     "quiet": (schedule.quiet_cron, schedule.timezone)}
    for deployment in spec["deployments"]:
        assert (PROJECT_ROOT / deployment["entrypoint"].split(":")[0]).is_file()


def test_serve_names_an_unreachable_server(monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["serve"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rltrader: error: PREFECT_API_URL=http://127.0.0.1:9/api: no Prefect server answers")
    assert "\n" not in error


def test_serve_names_a_missing_bar_file(tmp_path, capsys):
    assert main(["serve", "--data_path", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: bar file not found" in capsys.readouterr().err
