"""The feed-forward algorithm (``training.algorithm: feedforward``, SB3 ``PPO`` + ``MlpPolicy``) through the loop.

What must hold for it as for the recurrent default: it trains under every optimization,
resumes from a checkpoint after a crash, its saved zip is recognised wherever a model is
loaded, and the fast evaluator takes the same actions as ``model.predict``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

from rltrader.config import load_config
from rltrader.engine.model_files import saved_algorithm
from rltrader.evaluation.fast import fast_actions
from rltrader.evaluation.loading import load_model
from rltrader.evaluation.reference import reference_actions
from rltrader.training.checkpoints import CheckpointStore
from rltrader.training.trainer import Trainer

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def feedforward_config(tmp_path_factory):
    cache = tmp_path_factory.mktemp("feedforward-cache")
    return load_config().with_profile("smoke").with_overrides(
        {"cache.dir": str(cache), "training.algorithm": "feedforward"})


class SimulatedCrash(RuntimeError):
    pass


def test_a_feedforward_run_trains_every_optimization_and_resumes_after_a_crash(feedforward_config, tmp_path):
    config = feedforward_config.with_overrides({"training.iterations": 2, "optimizations.early_stopping": False,
                                                "optimizations.adaptive_timesteps": False})
    run_dir = tmp_path / "run"

    def crash_in_iteration_two(model, timesteps_done):
        if model.seed == config.training.seed + 1 and timesteps_done >= 1536:
            raise SimulatedCrash(f"killed at {timesteps_done}")

    with pytest.raises(SimulatedCrash):
        Trainer(config, SAMPLE, run_dir, update_hooks=[crash_in_iteration_two]).run()
    assert CheckpointStore(run_dir).latest(1).timesteps == 1024
    finished = run_dir / "iterations" / "iter_00" / "model.zip"
    before = finished.stat().st_mtime_ns

    summary = Trainer(config, SAMPLE, run_dir).run()
    assert summary.optimization_completed and len(summary.iterations) == 2
    assert finished.stat().st_mtime_ns == before  # iteration 0 was not retrained
    second = json.loads((run_dir / "run_state.json").read_text())["iterations"][1]
    assert second["resumed_at"] == 1024 and second["timesteps"] == 2048 and second["warm_started"]
    model = load_model(run_dir / "best_model.zip")
    assert isinstance(model, PPO) and not hasattr(model.policy, "lstm_actor")
    assert saved_algorithm(run_dir / "best_model.zip") == "feedforward"
    assert summary.test.agent["trades"] is not None


@pytest.mark.parametrize(("window", "net", "activation"), [(4, [64, 64], "tanh"), (1, [], "relu"), (2, [16], "relu")])
def test_the_fast_evaluator_takes_model_predicts_actions(feedforward_config, tmp_path, window, net, activation):
    config = feedforward_config.with_overrides({
        "training.iterations": 1, "env.window_size": window, "training.policy.net_arch_pi": net,
        "training.policy.activation": activation, "optimizations.fast_evaluation": False})
    trainer = Trainer(config, SAMPLE, tmp_path / "run")
    trainer.run()
    models = [load_model(tmp_path / "run" / "best_model.zip"), load_model(tmp_path / "run" / "iterations" /
                                                                          "iter_00" / "model.zip")]
    for split in ("validation", "test"):
        fast = fast_actions(models, trainer.market, split, config.env)
        for model, actions in zip(models, fast, strict=True):
            reference = reference_actions(model, trainer.market, split, config.env)
            assert np.array_equal(actions, reference)
        assert len(np.unique(fast[0])) > 1  # a policy that trades, not a constant the check would pass trivially


def test_a_recurrent_zip_is_told_from_a_feedforward_one(feedforward_config, tmp_path):
    recurrent = feedforward_config.with_overrides({"training.algorithm": "recurrent", "training.iterations": 1})
    Trainer(recurrent, SAMPLE, tmp_path / "run").run()
    assert saved_algorithm(tmp_path / "run" / "best_model.zip") == "recurrent"
    assert hasattr(load_model(tmp_path / "run" / "best_model.zip").policy, "lstm_actor")


def test_the_evaluate_command_scores_a_feedforward_model(feedforward_config, tmp_path, capsys):
    from rltrader.app.cli import main

    Trainer(feedforward_config.with_overrides({"training.iterations": 1}), SAMPLE, tmp_path / "run").run()
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tmp_path / "run" / "best_model.zip"), "--split", "test",
                 "--out", str(out), "--data_path", str(SAMPLE), "--cache_dir", str(tmp_path / "cache")]) == 0
    assert "agent" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"
