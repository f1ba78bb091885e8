"""TradingEnv and VecTradingEnv: execution without look-ahead, costs, risk, exact vectorization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from rltrader.config import Config
from rltrader.env import MarketData, TradingEnv, VecTradingEnv
from rltrader.env.account import account_terms
from rltrader.errors import DataError

SHORT, FLAT, LONG = 0, 1, 2


def tiny_market(config: Config, opens, closes, spreads=None, timestamps=None) -> MarketData:
    """A hand-made market with one constant feature: every split is the whole series."""
    n = len(opens)
    frame = pd.DataFrame({
        "timestamp": timestamps if timestamps is not None else pd.date_range("2024-01-01", periods=n, freq="h"),
        "open": opens, "close": closes, "f": np.zeros(n, np.float32),
    })
    if spreads is not None:
        frame["spread"] = spreads
    rows = {name: (0, n) for name in ("train", "validation", "test")}
    return MarketData.from_frame(frame, ["f"], rows, 8760.0, config)


def _with_sizing(market: MarketData, config: Config, env_config) -> MarketData:
    """``market`` with the account terms of ``env_config``'s sizing (the table does not depend on it)."""
    return dataclasses.replace(market, terms=account_terms(config.model_copy(update={"env": env_config}), "XAUUSD.csv"))


def hand_config(**env) -> Config:
    settings = {"env.window_size": 1, "env.sizing": "units", "env.max_position_size": 2.0, "env.initial_balance": 1000.0,
                "env.reward": "relative", "env.reward_scale": 1.0, "env.max_drawdown": None,
                "env.episode_length": None, "env.random_start": False, "costs.commission_per_unit": 0.05,
                "env.risk_aversion": 0.0}  # the P&L arithmetic alone; the penalty has its own test
    settings.update({f"env.{key}": value for key, value in env.items()})
    return Config().with_overrides(settings)


def test_risk_aversion_charges_the_square_of_each_scaled_return(prepared_market, config):
    """reward = x - risk_aversion * x**2 with x the scaled return: the same bars and actions, two envs."""
    plain = TradingEnv(prepared_market, "train",
                       config.env.model_copy(update={"random_start": False, "risk_aversion": 0.0}))
    averse = TradingEnv(prepared_market, "train",
                        config.env.model_copy(update={"random_start": False, "risk_aversion": 0.5}))
    plain.reset(seed=1)
    averse.reset(seed=1)
    for action in [2, 2, 0, 1, 2] * 4:
        x = plain.step(action)[1]
        assert averse.step(action)[1] == pytest.approx(x - 0.5 * x * x, abs=1e-12)


def test_hand_computed_pnl_and_costs_for_every_switch():
    """Fill at the next open, half the spread + commission per unit, mark to the close."""
    config = hand_config()
    opens = [100.0, 101.0, 103.0, 102.0, 99.0, 100.0, 104.0, 104.0]
    closes = [100.5, 102.0, 102.5, 100.0, 99.5, 103.0, 105.0, 103.0]
    spreads = [0.2] * 8
    env = TradingEnv(tiny_market(config, opens, closes, spreads), "train", config.env)
    env.reset(seed=0)
    cost = 0.5 * 0.2 + 0.05  # per unit traded
    # (action decided at the close of bar t, profit of the step filling at bar t+1)
    expected = [
        (LONG, 2 * (102.0 - 101.0) - 2 * cost),                        # flat -> long at 101
        (LONG, 2 * (103.0 - 102.0) + 2 * (102.5 - 103.0)),             # hold long: gap + body
        (SHORT, 2 * (102.0 - 102.5) - 2 * (100.0 - 102.0) - 4 * cost),  # long -> short: 4 units traded
        (SHORT, -2 * (99.0 - 100.0) - 2 * (99.5 - 99.0)),              # hold short
        (FLAT, -2 * (100.0 - 99.5) - 2 * cost),                        # short -> flat: gap only
        (FLAT, 0.0),                                                   # flat earns nothing, pays nothing
        (LONG, 2 * (103.0 - 104.0) - 2 * cost),                        # flat -> long at 104
    ]
    equity = 1000.0
    for action, pnl in expected:
        obs, reward, terminated, truncated, _ = env.step(action)
        assert reward == pytest.approx(pnl / equity, abs=1e-12)
        equity += pnl
        assert env.equity == pytest.approx(equity, abs=1e-9)
        assert obs[-2] == {SHORT: -1.0, FLAT: 0.0, LONG: 1.0}[action]
    assert truncated and not terminated
    # the last long opened at 104 and the bar closed at 103: unrealized PnL in % of equity
    assert obs[-1] == pytest.approx(100 * 2 * (103.0 - 104.0) / equity, rel=1e-6)


def test_fixed_spread_points_and_swap_over_rollovers():
    """Swap is charged on the position held over each date change, three nights after Wednesday."""
    config = hand_config(max_position_size=1.0).with_overrides(
        {"costs.spread_points": 20.0, "costs.swap_long": 0.5, "costs.commission_per_unit": 0.0, "data.point": 0.01}
    )
    stamps = pd.to_datetime(["2024-01-02 22:00", "2024-01-02 23:00", "2024-01-03 00:00",  # Tue -> Wed
                             "2024-01-03 23:00", "2024-01-04 00:00"])                        # Wed -> Thu
    prices = [100.0] * 5
    env = TradingEnv(tiny_market(config, prices, prices, timestamps=stamps), "train", config.env)
    env.reset(seed=0)
    env.step(LONG)  # fills at bar 1 open: pays half of 20 points x 0.01
    assert env.equity == pytest.approx(1000.0 - 0.1)
    env.step(LONG)  # held over Tuesday's rollover: one night
    assert env.equity == pytest.approx(1000.0 - 0.1 - 0.5)
    env.step(LONG)  # same day: no swap
    env.step(LONG)  # Wednesday's rollover: three nights
    assert env.equity == pytest.approx(1000.0 - 0.1 - 0.5 - 1.5)


def test_missing_spread_is_an_error_naming_the_key():
    config = hand_config()
    with pytest.raises(DataError, match=r"--spread_points N \(costs.spread_points\)"):
        tiny_market(config, [1.0, 2.0], [1.0, 2.0])


def test_drawdown_terminates_the_episode_at_the_right_bar():
    config = hand_config(max_drawdown=0.1, max_position_size=10.0)
    closes = [100.0, 100.0, 98.0, 96.0, 94.0, 92.0, 90.0]
    env = TradingEnv(tiny_market(config, closes, closes, [0.0] * 7), "train", config.env)
    env.reset(seed=0)
    done_at = None
    for step in range(6):
        _, _, terminated, _, info = env.step(LONG)
        if terminated:
            done_at = step
            break
    # long 10 units from 100 (entry commission 0.5): equity 999.5 - 10 * (100 - close);
    # 919.5 at close 92 is an 8% drawdown, 899.5 at close 90 crosses 10%
    assert done_at == 5 and info["equity"] == pytest.approx(899.5)


def test_no_look_ahead(prepared_market, config):
    """Shuffling every bar after t changes nothing the agent saw or earned up to t."""
    market = prepared_market
    env_config = config.env.model_copy(update={"random_start": False, "episode_length": None})
    actions = np.random.default_rng(1).integers(0, 3, 300)

    def run(market_data: MarketData) -> tuple[list[np.ndarray], list[float], int]:
        env = TradingEnv(market_data, "train", env_config)
        obs, _ = env.reset(seed=0)
        seen, earned = [obs], []
        for action in actions:
            obs, reward, *_ = env.step(action)
            seen.append(obs)
            earned.append(reward)
        return seen, earned, env.bar

    seen, earned, last_bar = run(market)
    shuffled_rows = np.concatenate([np.arange(last_bar + 1),
                                    np.random.default_rng(2).permutation(np.arange(last_bar + 1, len(market.close)))])
    shuffled = dataclasses.replace(  # fields only: no cached step table of the original comes along
        market,
        features=np.ascontiguousarray(market.features[shuffled_rows]),
        open=market.open[shuffled_rows], close=market.close[shuffled_rows],
        step_table=market.step_table[shuffled_rows],
    )
    assert not np.array_equal(shuffled.close, market.close)
    seen_after, earned_after, _ = run(shuffled)
    assert all(np.array_equal(a, b) for a, b in zip(seen, seen_after, strict=True))
    assert earned == earned_after


@pytest.mark.filterwarnings("ignore:.*Box observation space m.* value is.*infinity")
def test_check_env_passes(prepared_market, config):
    check_env(TradingEnv(prepared_market, "train", config.env), skip_render_check=True)


def test_observations_are_fresh_float32_arrays(prepared_market, config):
    env = TradingEnv(prepared_market, "train", config.env)
    first, _ = env.reset(seed=0)
    second, *_ = env.step(LONG)
    assert first.dtype == np.float32 and first.shape == env.observation_space.shape
    assert not np.shares_memory(first, second)
    with pytest.raises(ValueError, match="action must be"):
        env.step(3)


@pytest.mark.parametrize(("reward", "sizing", "risk_aversion"), [
    ("log", "equity_fraction", 0.0), ("relative", "units", 0.0), ("log", "lots", 0.0), ("log", "equity_fraction", 0.3)])
def test_vectorized_env_equals_independent_envs(prepared_market, config, reward, sizing, risk_aversion):
    """Same seeds -> the same observations, rewards, dones and infos as N TradingEnvs, bit for bit."""
    env_config = config.env.model_copy(update={"reward": reward, "episode_length": 40, "max_drawdown": 0.002,
                                             "max_position_size": 20.0, "sizing": sizing, "lots": 0.2,
                                             "risk_aversion": risk_aversion})
    prepared_market = _with_sizing(prepared_market, config, env_config)
    n_envs = 5
    single = DummyVecEnv([lambda: TradingEnv(prepared_market, "train", env_config) for _ in range(n_envs)])
    vectorized = VecTradingEnv(prepared_market, "train", env_config, num_envs=n_envs)
    single.seed(7)
    vectorized.seed(7)
    assert np.array_equal(single.reset(), vectorized.reset())
    rng = np.random.default_rng(0)
    episodes_ended = terminations = 0
    for _ in range(400):
        actions = rng.integers(0, 3, n_envs)
        obs_a, rewards_a, dones_a, infos_a = single.step(actions)
        obs_b, rewards_b, dones_b, infos_b = vectorized.step(actions)
        assert np.array_equal(obs_a, obs_b)
        assert np.array_equal(rewards_a, rewards_b)
        assert np.array_equal(dones_a, dones_b)
        for info_a, info_b, done in zip(infos_a, infos_b, dones_a, strict=True):
            assert info_a["TimeLimit.truncated"] == info_b.get("TimeLimit.truncated", False)
            if done:
                assert np.array_equal(info_a["terminal_observation"], info_b["terminal_observation"])
                assert info_a["equity"] == info_b["equity"]
                episodes_ended += 1
                terminations += not info_a["TimeLimit.truncated"]
    assert episodes_ended > 20 and terminations > 0  # auto-resets and drawdown stops were exercised
    assert vectorized.get_attr("equity") == single.get_attr("equity")


def test_vectorized_env_api_paths_agree_and_reject_bad_actions(prepared_market, config):
    """step == step_async + step_wait, any action container works, a bad batch changes nothing."""
    from rltrader.engine.kernels import accounts
    from rltrader.env.trading_env import MIN_EQUITY_RATIO

    assert accounts._MIN_EQUITY_RATIO == MIN_EQUITY_RATIO  # the compiled step clamps as TradingEnv does
    one, other = (VecTradingEnv(prepared_market, "train", config.env, num_envs=3) for _ in range(2))
    one.seed(3)
    other.seed(3)
    assert np.array_equal(one.reset(), other.reset())
    previous = None
    for actions in ([0, 1, 2], np.array([2, 2, 0], dtype=np.int32), (1, 0, 1)):
        obs_a, rewards_a, dones_a, _ = one.step(actions)
        other.step_async(actions)
        obs_b, rewards_b, dones_b, _ = other.step_wait()
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rewards_a, rewards_b)
        assert np.array_equal(dones_a, dones_b)
        assert previous is None or not np.shares_memory(previous, obs_a)  # SB3 keeps every observation
        previous = obs_a
    bars, equity = one.bar, one.equity
    with pytest.raises(ValueError, match="actions must be"):
        one.step([0, 3, 1])
    with pytest.raises(ValueError, match="actions must be"):
        one.step([-1, 1, 1])
    assert np.array_equal(one.bar, bars) and np.array_equal(one.equity, equity)


def test_recurrent_ppo_trains_on_the_vectorized_env(prepared_market, config):
    from sb3_contrib import RecurrentPPO

    env = VecTradingEnv(prepared_market, "train", config.env, num_envs=4)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu",
                         policy_kwargs={"lstm_hidden_size": 16, "net_arch": [16]})
    model.learn(128)
    assert model.num_timesteps == 128


def test_the_accounts_sum_the_scaled_returns_the_training_sets_its_risk_aversion_from(prepared_market, config):
    """``take_return_moments`` gives the mean and mean square of the returns before the penalty, over every account
    step since the last call; a risk aversion set between steps is charged from the next step on."""
    env_config = config.env.model_copy(update={"episode_length": 40, "risk_aversion": 0.3})
    plain_config = env_config.model_copy(update={"risk_aversion": 0.0})
    n_envs = 3
    plain = VecTradingEnv(prepared_market, "train", plain_config, num_envs=n_envs)
    averse = VecTradingEnv(prepared_market, "train", env_config, num_envs=n_envs)
    for env in (plain, averse):
        env.seed(5)
        env.reset()
    rng = np.random.default_rng(1)
    returns = []
    for step in range(120):
        if step == 60:
            mean, mean_square, count = averse.take_return_moments()
            seen = np.concatenate(returns).astype(np.float64)
            assert count == seen.size == 60 * n_envs
            assert mean == pytest.approx(seen.mean(), rel=1e-5, abs=1e-9)
            assert mean_square == pytest.approx(np.mean(seen**2), rel=1e-5)
            averse.risk_aversion = 1.25
            assert averse.risk_aversion == 1.25
        actions = rng.integers(0, 3, n_envs)
        x = plain.step(actions)[1]
        rewards = averse.step(actions)[1]
        penalty = 0.3 if step < 60 else 1.25
        assert rewards == pytest.approx(x - penalty * x.astype(np.float64) ** 2, rel=1e-5, abs=1e-7)
        returns.append(x)
    assert averse.take_return_moments()[2] == 60 * n_envs
    assert averse.take_return_moments() == (0.0, 0.0, 0)
