"""The original method's throughput, measured on stock sb3-contrib once per machine and config, behind the
live speedup estimate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import SAMPLE_CSV

from rltrader.config import load_config
from rltrader.features.preparation import preprocess


@pytest.fixture(scope="module")
def smoke_market(tmp_path_factory):
    from rltrader.env import MarketData

    config = load_config().with_profile("smoke").with_overrides(  # the recurrent engine's baseline is measured here
        {"cache.dir": str(tmp_path_factory.mktemp("calibration-cache")), "training.algorithm": "recurrent"})
    return config, MarketData.from_prepared(preprocess(SAMPLE_CSV, config), config, SAMPLE_CSV)


def test_the_original_throughput_is_measured_on_stock_sb3_contrib_once_per_machine_and_config(
        smoke_market, tmp_path, monkeypatch):
    from sb3_contrib import RecurrentPPO

    from rltrader.training import calibration

    config, market = smoke_market
    monkeypatch.setenv(calibration.DIRECTORY_VARIABLE, str(tmp_path))
    learned: list[type] = []
    real_learn = RecurrentPPO.learn

    def spy(self, *args, **kwargs):
        learned.append(type(self))
        return real_learn(self, *args, **kwargs)

    monkeypatch.setattr(RecurrentPPO, "learn", spy)
    first = calibration.original_throughput(config, market)
    assert learned == [RecurrentPPO]  # stock sb3-contrib, not the fused engine (a subclass)
    assert first.timesteps_per_second > 0 and first.engine == "stock sb3-contrib RecurrentPPO"
    assert first.first_update_extra_seconds >= 0 and first.timed_epochs == calibration.SLOW_EPOCHS
    assert (first.batch_size, first.n_epochs) == (config.training.batch_size, config.training.n_epochs)
    assert [path.name for path in tmp_path.iterdir()] == [f"{first.key}.json"]
    assert calibration.original_throughput(config, market) == first and len(learned) == 1  # cached
    bigger = config.with_overrides({"training.policy.lstm_hidden_size": 64})
    assert calibration.original_throughput(bigger, market).key != first.key and len(learned) == 2


def test_calibration_runs_under_the_performance_mode_in_force(smoke_market, tmp_path, monkeypatch):
    from rltrader.runtime.performance_mode import ModeSwitcher, write_mode
    from rltrader.training import calibration

    config, market = smoke_market
    monkeypatch.setenv(calibration.DIRECTORY_VARIABLE, str(tmp_path))
    threads = torch.get_num_threads()
    settings = tmp_path / "settings.json"
    write_mode(settings, "performance")
    try:
        measured = calibration.original_throughput(config, market, [ModeSwitcher(config.performance_mode, None,
                                                                                 settings)])
    finally:
        torch.set_num_threads(threads)
    assert measured.mode == "performance"
    assert (measured.batch_size, measured.n_epochs) == (2 * config.training.batch_size,
                                                        int(config.training.n_epochs * 1.5 + 0.5))
    assert "performance mode" in measured.basis()


def test_the_speedup_estimate_divides_the_original_budget_by_the_calibrated_throughput(smoke_market, tmp_path):
    from rltrader.training.budget import original_budget
    from rltrader.training.trainer import Trainer

    config, _ = smoke_market
    summary = Trainer(config, SAMPLE_CSV, tmp_path / "run").run()
    original = summary.original_throughput
    assert summary.speedup_basis == "estimated_from_calibration" and original is not None
    budget = original_budget(config.training)
    per_iteration = (budget / original.timesteps_per_second + original.first_update_extra_seconds
                     + (original.reset_rollouts(budget) - 1) * original.reset_update_extra_seconds)
    expected = (config.training.iterations * per_iteration + summary.preprocess_seconds + summary.report_seconds) \
        / summary.total_time_seconds
    # the summary rounds the speedup to 3 decimals and its seconds to milliseconds
    assert summary.total_speedup_achieved == pytest.approx(expected, rel=1e-3, abs=6e-4)
    written = json.loads((tmp_path / "run" / "optimization_summary.json").read_text())
    assert written["original_throughput"]["timesteps_per_second"] == original.timesteps_per_second
    baseline = Trainer(config.original_method(), SAMPLE_CSV, tmp_path / "original").run()
    assert baseline.original_throughput is None and baseline.speedup_basis == "baseline"


def test_the_estimate_charges_the_slow_update_to_every_rollout_in_which_stock_training_meets_a_reset(
        smoke_market, tmp_path, monkeypatch):
    """Stock sb3-contrib steps through a sequence holding an episode start one timestep at a time, so each
    rollout with a reset, not only an iteration's first, pays the measured extra: the estimate counts exactly
    the rollouts in which a stock learn() collects episode starts."""
    from stable_baselines3.common.callbacks import BaseCallback

    from rltrader.env import MarketData
    from rltrader.env.vec_env import VecTradingEnv
    from rltrader.training import calibration
    from rltrader.training.models import build_model
    from rltrader.training.phases import hyperparameters_for

    base, _ = smoke_market
    monkeypatch.setenv(calibration.DIRECTORY_VARIABLE, str(tmp_path))
    config = base.with_overrides({"env.episode_length": 300, "env.max_drawdown": None, "training.n_epochs": 1})
    market = MarketData.from_prepared(preprocess(SAMPLE_CSV, config), config, SAMPLE_CSV)
    original = calibration.original_throughput(config, market)
    assert (original.n_steps, original.episode_steps) == (config.training.n_steps, 300)

    class ResetRollouts(BaseCallback):
        def __init__(self) -> None:
            super().__init__(verbose=0)
            self.with_starts: list[bool] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.with_starts.append(bool(self.model.rollout_buffer.episode_starts.any()))

    training = config.training
    timesteps = 7 * training.rollout_size
    model = build_model(VecTradingEnv(market, "train", config.env, training.n_envs), training,
                        hyperparameters_for(0, training, False), training.seed, fast_engine=False)
    seen = ResetRollouts()
    model.learn(total_timesteps=timesteps, callback=seen)
    assert len(seen.with_starts) == 7 and sum(seen.with_starts) == original.reset_rollouts(timesteps) > 2
    assert 0 <= original.reset_update_extra_seconds <= original.first_update_extra_seconds + 0.1
    assert original.iteration_seconds(timesteps) == pytest.approx(
        timesteps / original.timesteps_per_second + original.first_update_extra_seconds
        + (sum(seen.with_starts) - 1) * original.reset_update_extra_seconds)
    unknown = original.model_copy(update={"episode_steps": None})  # episodes to the split's end: the first only
    assert unknown.reset_rollouts(timesteps) == 1 and "its first update after reset" in unknown.basis()


def test_the_live_line_names_its_basis():
    from rltrader.display.lines import iteration_line
    from rltrader.records import OriginalThroughput

    record = SimpleNamespace(iteration=0, phase="explore", timesteps=2048, wall_seconds=6.0, timesteps_per_second=400.0,
                             early_stopped=False, validation_score=1.0, timesteps_saved=0)
    original = OriginalThroughput(timesteps_per_second=312.0, first_update_extra_seconds=20.0,
                                  engine="stock sb3-contrib RecurrentPPO", timed_timesteps=2048, batch_size=512,
                                  n_epochs=10, timed_epochs=1, torch_threads=1, machine="here", calibrated_at="now",
                                  key="k")
    line = iteration_line([record], 8, "sharpe", 1.0, 7.9, original)
    assert line.endswith("| speedup so far ~7.9x (est. vs stock sb3-contrib RecurrentPPO at 312 ts/s here)")
