"""``rltrader tune``: an Optuna study whose trials are real (tiny) training runs.

Asserted: a study of 4 trials on 2 workers finishes through the Prefect flow and writes a
config that ``train`` accepts; the same command with more trials resumes without rerunning
finished ones, and a trial a killed run left RUNNING is run again in its own directory;
the median pruner stops a trailing trial early; a search over a key that progressive
training overrides is refused naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from rltrader.config import load_config
from rltrader.errors import ConfigError, UserInputError
from rltrader.jobs.requests import TrainRequest, TuneRequest
from rltrader.tuning.study import Tuner
from rltrader.tuning.trial import VALIDATION_RETURNS_FILE, run_trial

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"
SPACE = {"training.gamma": {"low": 0.9, "high": 0.999}, "env.window_size": {"choices": [1, 2]}}


def _config_file(tmp_path: Path, **tune: object) -> Path:
    """The shipped config with a tiny search: one-iteration smoke trials (3 validation looks) over two keys."""
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "configs" / "default.yaml").read_text())
    raw["profiles"]["tiny_tune"] = {**raw["profiles"]["smoke"], "iterations": 1, "total_timesteps": 1536,
                                    "min_timesteps": 1024}
    raw["tune"].update({"profile": "tiny_tune", "space": SPACE, "pruner": {"n_startup_trials": 2, "n_warmup_steps": 1},
                        **tune})
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_a_study_finishes_resumes_without_rerunning_and_writes_a_config_train_accepts(prefect_harness, tmp_path):
    from flows.tune import tune_study

    request = TuneRequest(data_path=str(SAMPLE), config=str(_config_file(tmp_path)), name="sample", trials=4,
                          workers=2, results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"),
                          settings_file=str(tmp_path / "settings.json"))
    result = tune_study(request)
    root = Path(result["root"])
    trials = json.loads((root / "trials.json").read_text())["trials"]
    assert result["finished"] == 4 and len(trials) == 4
    assert {row["state"] for row in trials} <= {"complete", "pruned"}
    assert len({json.dumps({k: row[k] for k in SPACE}, sort_keys=True) for row in trials}) == 4  # 4 distinct draws
    stamps = {path: path.stat().st_mtime_ns for path in root.glob("trials/*/**/*") if path.is_file()}
    assert {path.relative_to(root).parts[1] for path in stamps} == {"0000", "0001", "0002", "0003"}

    best = load_config(result["best_config"])  # what rltrader train --config reads
    assert best.training.gamma == pytest.approx(result["best_params"]["training.gamma"])
    assert best.env.window_size == result["best_params"]["env.window_size"]
    assert best.training.total_timesteps == load_config().training.total_timesteps  # trial budget not carried over
    assert TrainRequest(data_path=str(SAMPLE), config=result["best_config"]).to_config().env.window_size == \
        best.env.window_size
    assert "best of 4 finished trials" in Path(result["best_config"]).read_text()
    # every trial tried, pruned ones too, is a column of the overfitting matrix: its best model's validation returns
    returns = [np.load(root / "trials" / f"{number:04d}" / VALIDATION_RETURNS_FILE) for number in range(4)]
    assert len({len(column) for column in returns}) <= 2  # a wider window starts deciding a bar later
    overfitting = result["overfitting"]
    assert overfitting == json.loads((root / "overfitting.json").read_text())
    assert overfitting["trials"] == 4 and overfitting["trial_numbers"] == [0, 1, 2, 3]
    assert 0.0 <= overfitting["pbo"] <= 1.0 and overfitting["splits"] == 12_870
    assert overfitting["bars"] == min(len(column) for column in returns) // 16 * 16
    assert overfitting["pick"]["trial"] == result["best_trial"] and 0 <= overfitting["pick"]["deflated_sharpe"] <= 1

    # a kill mid-trial leaves it RUNNING in the study: the next run trains it again, then two new ones
    tuner = Tuner.open("sample", request.to_config(), SAMPLE, tmp_path / "results")
    left_running = tuner.ask()
    resumed = tune_study(request.model_copy(update={"trials": 6}))
    assert resumed["finished"] == 6
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps  # finished trials were not rerun
    rows = {row["trial"]: row for row in json.loads((root / "trials.json").read_text())["trials"]}
    assert rows[left_running.number]["state"] in ("complete", "pruned") and len(rows) == 6
    assert (root / "trials" / f"{left_running.number:04d}" / "best_model.zip").is_file()


def test_a_trial_trailing_the_median_is_pruned_early(tmp_path):
    config = load_config(_config_file(tmp_path)).with_overrides({"cache.dir": str(tmp_path / "cache")})
    tuner = Tuner.open("pruning", config, SAMPLE, tmp_path / "results")
    # two earlier trials that scored far above anything a smoke run reaches, at every look
    for _ in range(2):
        tuner.study.add_trial(optuna.trial.create_trial(
            params={"training.gamma": 0.95, "env.window_size": 1}, distributions=tuner.distributions, value=100.0,
            intermediate_values={look: 100.0 for look in range(20)}))
    spec = tuner.ask()
    outcome = run_trial(spec)
    assert outcome.state == "pruned"
    assert outcome.looks == config.tune.pruner.n_warmup_steps + 1  # stopped at the first look it may be pruned at
    full = config.with_profile("tiny_tune")
    assert outcome.timesteps < full.training.iterations * full.training.total_timesteps
    assert tuner.tell(outcome).startswith(f"Trial {spec.number} pruned")
    kept = np.load(Path(spec.run.run_dir) / VALIDATION_RETURNS_FILE)  # pruned, yet tried: it counts in the PBO
    assert kept.ndim == 1 and len(kept) > 100 and np.isfinite(kept).all()


def test_searching_a_key_the_phases_override_is_refused_naming_it(tmp_path):
    config = load_config(_config_file(tmp_path, space={"training.learning_rate": {"low": 1e-4, "high": 1e-3,
                                                                                   "log": True}}))
    with pytest.raises(ConfigError, match="training.learning_rate"):
        Tuner.open("phases", config, SAMPLE, tmp_path / "results")
    assert not (tmp_path / "results" / "tune-phases").exists()
    with pytest.raises(ConfigError, match="training.lerning_rate"):
        load_config(_config_file(tmp_path, space={"training.lerning_rate": {"low": 1e-4, "high": 1e-3}}))


def test_the_tune_command_refuses_a_missing_file_in_one_line(tmp_path, capsys):
    from rltrader.app.cli import main

    assert main(["tune", "--data_path", str(tmp_path / "missing.csv"), "--results_dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rltrader: error:") and "missing.csv" in error and "\n" not in error
    assert not any(tmp_path.iterdir())


def test_a_trial_over_several_markets_scores_the_mean_fraction_of_each_oracle_less_its_overrun(tmp_path):
    """Each known-answer file's best validation Sharpe as a fraction of its oracle's there, the time penalty
    per multiple of the target overrun, their mean as the trial's value; a phase's key is searchable."""
    from rltrader.data.synthetic import KnownAnswerMarket, write_market
    from rltrader.tuning.trial import file_score

    files = [tmp_path / "markets" / f"{kind}.csv" for kind in ("day_of_week", "volume")]
    for path in files:
        write_market(KnownAnswerMarket(kind=path.stem, bars=3_000, seed=2), path)
    space = {"training.phases.0.learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}}
    config = load_config(_config_file(tmp_path, space=space, time_target_seconds=0.1, time_penalty=0.01)
                         ).with_overrides({"cache.dir": str(tmp_path / "cache")})
    tuner = Tuner.open("markets", config, files[0], tmp_path / "results", more_data=[files[1]])
    spec = tuner.ask()
    assert [Path(run.data_path).name for run in spec.runs] == ["day_of_week.csv", "volume.csv"]
    assert spec.run.config.training.phases[0].learning_rate == spec.params["training.phases.0.learning_rate"]
    outcome = run_trial(spec)
    assert outcome.state == "complete" and [part["data"] for part in outcome.files] == ["day_of_week.csv", "volume.csv"]
    for part in outcome.files:
        assert part["oracle_sharpe"] > 0 and part["seconds"] > 0.1
        overrun = part["seconds"] / 0.1 - 1
        fraction = min(part["best_score"] / part["oracle_sharpe"], 1.0)
        assert part["score"] == pytest.approx(fraction - 0.01 * overrun, abs=6e-3)
    assert outcome.value == pytest.approx(sum(part["score"] for part in outcome.files) / 2)
    tuner.tell(outcome)
    row = tuner.trials_table()[0]
    assert row["score day_of_week.csv"] == pytest.approx(outcome.files[0]["score"], abs=1e-3)
    assert file_score(2.0, None, 30.0, 60.0, 0.5) == 2.0 and file_score(2.0, 4.0, 120.0, 60.0, 0.5) == 0.0
    assert file_score(6.0, 4.0, 30.0, 60.0, 0.5) == 1.0  # beating the oracle counts as matching it
    with pytest.raises(UserInputError, match="another data sha256"):  # the same study on other files is refused
        Tuner.open("markets", config, files[1], tmp_path / "results", more_data=[files[0]])


def test_a_training_setting_every_phase_replaces_is_named_when_edited():
    from rltrader.training.phases import unused_settings

    training = load_config().with_overrides({"training.learning_rate": 0.001, "training.gamma": 0.9}).training
    unused = unused_settings(training, progressive=True)
    assert len(unused) == 1 and unused[0].startswith("training.learning_rate=0.001")
    assert unused_settings(training, progressive=False) == []
    assert unused_settings(load_config().training, progressive=True) == []
    # a profile that sets a key and the first phase's alike (for --no-progressive_training) is not warned about
    feedforward = load_config().with_profile("feedforward").training
    assert feedforward.learning_rate == feedforward.phases[0].learning_rate != load_config().training.learning_rate
    assert unused_settings(feedforward, progressive=True) == []
