"""Evaluation: fast == reference on a trained model, ledger == environment, metrics by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rltrader.atomic import TEMP_PREFIX
from rltrader.env import TradingEnv, VecTradingEnv, evaluation_config
from rltrader.evaluation.fast import fast_actions
from rltrader.evaluation.ledger import Ledger, replay
from rltrader.evaluation.metrics import compute_metrics
from rltrader.evaluation.reference import reference_actions
from rltrader.evaluation.report import evaluate_actions, evaluate_model, write_report


@pytest.fixture(scope="module")
def trained_models(prepared_market, prepared_sample):
    """Two small RecurrentPPO models after a few updates (different seeds, same architecture)."""
    from sb3_contrib import RecurrentPPO

    _, config = prepared_sample
    models = []
    for seed in (0, 1):
        env = VecTradingEnv(prepared_market, "train", config.env, num_envs=4)
        model = RecurrentPPO("MlpLstmPolicy", env, n_steps=64, batch_size=128, n_epochs=2, seed=seed, device="cpu",
                             policy_kwargs={"lstm_hidden_size": 32, "net_arch": [32, 32]})
        model.learn(512)
        models.append(model)
    return models


@pytest.fixture(scope="module")
def trained_skip_models(prepared_market, prepared_sample):
    """Two small models of the default recurrent policy (the heads read the observation beside the LSTM),
    trained on the engine after a few updates."""
    from rltrader.engine import FusedLstmPolicy, FusedRecurrentPPO

    _, config = prepared_sample
    models = []
    for seed in (0, 1):
        env = VecTradingEnv(prepared_market, "train", config.env, num_envs=4)
        model = FusedRecurrentPPO(FusedLstmPolicy, env, n_steps=64, batch_size=128, n_epochs=2, seed=seed,
                                  device="cpu", policy_kwargs={"lstm_hidden_size": 32, "net_arch": [32, 32],
                                                               "observation_skip": True})
        model.learn(512)
        models.append(model)
    return models


@pytest.mark.parametrize("models", ["trained_models", "trained_skip_models"])
def test_fast_and_reference_evaluators_agree_on_trained_models(models, prepared_market, config, request):
    trained_models = request.getfixturevalue(models)
    for split in ("validation", "test"):
        reference = [reference_actions(model, prepared_market, split, config.env) for model in trained_models]
        batched = fast_actions(trained_models, prepared_market, split, config.env)
        for ref, fast in zip(reference, batched, strict=True):
            assert np.array_equal(ref, fast)
        assert len(set(reference[0].tolist())) > 1  # the models really trade: the check is not vacuous
    one = evaluate_model(trained_models[0], prepared_market, "validation", config.env, evaluator="fast")
    other = evaluate_model(trained_models[0], prepared_market, "validation", config.env, evaluator="reference")
    assert one.metrics == other.metrics


@pytest.mark.parametrize("policy_kwargs", [
    {"lstm_hidden_size": 8, "n_lstm_layers": 2, "net_arch": [8], "activation_fn": "ReLU"},
    {"lstm_hidden_size": 16, "n_lstm_layers": 3, "net_arch": [], "activation_fn": "Tanh"},
    {"lstm_hidden_size": 12, "n_lstm_layers": 1, "net_arch": [16, 4, 8], "activation_fn": "Tanh"},
    {"lstm_hidden_size": 8, "n_lstm_layers": 2, "net_arch": [8], "activation_fn": "ReLU", "observation_skip": True},
    {"lstm_hidden_size": 12, "n_lstm_layers": 1, "net_arch": [16, 4, 8], "activation_fn": "Tanh",
     "observation_skip": True},
], ids=["2-layers-relu", "3-layers-no-mlp", "uneven-mlp", "skip-2-layers-relu", "skip-uneven-mlp"])
def test_fast_evaluator_supports_other_architectures(prepared_market, config, policy_kwargs):
    import torch
    from sb3_contrib import RecurrentPPO
    from torch import nn

    from rltrader.engine.policies import ObservationSkipPolicy

    kwargs = dict(policy_kwargs, activation_fn=getattr(nn, policy_kwargs["activation_fn"]))
    policy = ObservationSkipPolicy if kwargs.get("observation_skip") else "MlpLstmPolicy"
    env_config = config.env.model_copy(update={"window_size": 32})  # a long window: its projection is split off
    env = TradingEnv(prepared_market, "train", env_config)
    for seed in range(3, 13):  # the first initialization whose policy switches actions on validation
        model = RecurrentPPO(policy, env, seed=seed, device="cpu", policy_kwargs=kwargs)
        with torch.no_grad():  # SB3 initializes the action net near zero; widen the logits so actions vary
            model.policy.action_net.weight.mul_(100.0)
        reference = reference_actions(model, prepared_market, "validation", env_config)
        if len(set(reference.tolist())) > 1:
            break
    assert len(set(reference.tolist())) > 1  # not vacuous: the policy really switches
    assert np.array_equal(reference, fast_actions([model], prepared_market, "validation", env_config)[0])


def test_replayed_ledger_equals_the_environment(prepared_market, config):
    env_config = evaluation_config(config.env)
    env = TradingEnv(prepared_market, "validation", env_config)
    env.reset()
    actions, equities = [], [env.equity]
    rng = np.random.default_rng(5)
    done = False
    while not done:
        actions.append(int(rng.integers(0, 3)))
        _, _, terminated, truncated, _ = env.step(actions[-1])
        equities.append(env.equity)
        done = terminated or truncated
    ledger = replay(prepared_market, env.bounds.first, np.array(actions), env_config.initial_balance)
    assert np.array_equal(ledger.equity, np.array(equities))  # bit for bit, not approximately
    assert ledger.steps == prepared_market.rows("validation")[1] - 1 - env.bounds.first


def test_metrics_match_a_hand_calculation(prepared_market):
    """A known 4-bar equity curve with one long trade and one short trade."""
    first = 100
    n = 4
    equity = np.array([100.0, 110.0, 99.0, 99.0, 100.02])
    ledger = Ledger(
        timestamps=pd.date_range("2024-01-01", periods=n + 1, freq="h").to_numpy(),
        close=np.ones(n + 1), equity=equity,
        positions=np.array([0.0, 1.0, 1.0, 0.0, -1.0]),
        actions=np.array([2, 2, 1, 0]),
        step_pnl=np.diff(equity), trade_costs=np.array([0.5, 0.0, 0.5, 0.5]), swap_costs=np.zeros(n),
    )
    metrics = compute_metrics(ledger, prepared_market, first)
    returns = np.array([0.1, -0.1, 0.0, 100.02 / 99.0 - 1.0])
    mean, std = returns.mean(), returns.std(ddof=1)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    per_year = prepared_market.bars_per_year
    assert metrics["total_return"] == pytest.approx(0.0002)
    assert metrics["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert metrics["sharpe"] == pytest.approx(mean / std * math.sqrt(per_year))
    assert metrics["sortino"] == pytest.approx(mean / downside * math.sqrt(per_year))
    assert metrics["span_days"] == pytest.approx(4 / 24)
    assert metrics["cagr"] is None and metrics["calmar"] is None  # 4 hours compounded to a year means nothing
    assert metrics["exposure"] == pytest.approx(0.75)
    assert metrics["trades"] == 2
    assert metrics["avg_holding_bars"] == pytest.approx(1.5)
    assert metrics["avg_holding_hours"] == pytest.approx(1.5)
    assert metrics["costs_paid"] == pytest.approx(1.5)


def test_trade_statistics_add_up_to_the_equity_change(prepared_market, config):
    steps = 300
    first = prepared_market.rows("validation")[0]
    actions = np.random.default_rng(3).integers(0, 3, steps)
    ledger = replay(prepared_market, first, actions, 10_000.0)
    from rltrader.evaluation.ledger import trade_pnls

    pnls, lengths = trade_pnls(prepared_market, first, ledger)
    assert pnls.sum() == pytest.approx(ledger.equity[-1] - ledger.equity[0], abs=1e-6)
    assert lengths.sum() == np.count_nonzero(ledger.positions[1:])


def test_baselines_trade_the_same_bars(prepared_market, config):
    report = evaluate_actions(prepared_market, "validation", config.env,
                              np.full(prepared_market.rows("validation")[1] - 1 - prepared_market.rows("validation")[0],
                                      2), seed=11)
    hold = report.metrics["buy_and_hold"]
    assert {key: report.metrics["agent"][key] for key in hold} == hold  # always long == buy and hold
    assert report.metrics["flat"]["total_return"] == 0.0 and report.metrics["flat"]["trades"] == 0
    again = evaluate_actions(prepared_market, "validation", config.env, report.ledgers["agent"].actions, seed=11)
    assert again.metrics["agent"]["null_percentile"] == report.metrics["agent"]["null_percentile"]  # seeded
    assert report.to_json()["null_seed"] == 11


def test_report_files_are_written_atomically(trained_models, prepared_market, config, tmp_path):
    report = evaluate_model(trained_models[0], prepared_market, "test", config.env, seed=4)
    paths = write_report(report, tmp_path / "eval")
    metrics = json.loads(paths["metrics"].read_text())
    assert set(metrics["baselines"]) == {"buy_and_hold", "flat"} and metrics["oracle"] is None  # real bars
    assert metrics["agent"]["null_policies"] == 1_000 and 0 <= metrics["agent"]["null_percentile"] <= 100
    assert "edge_captured" not in metrics["agent"]  # no planted edge on real bars, so no row for it
    assert metrics["bars_per_year"] == pytest.approx(prepared_market.bars_per_year)
    frame = pd.read_parquet(paths["equity"])
    assert len(frame) == metrics["bars"] + 1
    assert frame["agent_equity"].iloc[-1] == pytest.approx(metrics["agent"]["final_equity"])
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.name.startswith(TEMP_PREFIX) for p in (tmp_path / "eval").iterdir())


def test_undefined_ratios_are_none_not_infinite(prepared_market):
    """A flat curve has no Sharpe; a huge return over a few bars cannot be annualized in a float."""
    from rltrader.evaluation.metrics import _cagr

    assert _cagr(1.5, 1e-6) is None
    assert _cagr(0.0, 1.0) == -1.0
    assert _cagr(1.21, 2.0) == pytest.approx(0.1)
    flat = replay(prepared_market, prepared_market.rows("test")[0], np.ones(50, dtype=np.int64), 100.0)
    metrics = compute_metrics(flat, prepared_market, prepared_market.rows("test")[0])
    assert metrics["sharpe"] is None and metrics["profit_factor"] is None and metrics["trades"] == 0
    json.dumps(metrics, allow_nan=False)


def test_evaluate_command_writes_the_report(trained_models, sample_csv, tmp_path, capsys):
    from rltrader.app.cli import main

    model_path = tmp_path / "agent.zip"
    trained_models[0].save(model_path)
    out = tmp_path / "report"
    common = ["--data_path", str(sample_csv), "--cache_dir", str(tmp_path / "cache")]
    assert main(["evaluate", "--model", str(model_path), "--split", "test", "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    assert "buy_and_hold" in printed and "agent" in printed
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"

    assert main(["evaluate", "--model", str(tmp_path / "missing.zip"), *common]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("rltrader: error:") and "missing.zip" in error and "\n" not in error
