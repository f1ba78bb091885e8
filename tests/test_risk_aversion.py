"""The reward's risk aversion follows the agent's own Sharpe (``rltrader.training.risk_aversion``)."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.training.risk_aversion import sharpe_risk_aversion


def test_no_penalty_beyond_the_floor_until_the_agent_earns():
    assert sharpe_risk_aversion(-0.01, 0.09, gain=1.9, floor=0.05) == 0.05
    assert sharpe_risk_aversion(0.0, 0.09, gain=1.9, floor=0.05) == 0.05
    assert sharpe_risk_aversion(0.0, 0.0, gain=1.9, floor=0.05) == 0.05  # nothing moved: a flat rollout
    assert sharpe_risk_aversion(0.03, 0.09, gain=1.9, floor=0.05) == pytest.approx(1.9 * 0.03 / 0.18)


@pytest.mark.parametrize("edge", [0.02, 0.1, 0.5, 2.0])
def test_below_a_gain_of_two_a_market_with_the_same_edge_on_every_bar_still_pays_to_hold(edge):
    """The claim in EnvConfig.risk_aversion_gain's description: an agent holding every bar of a uniform edge
    still expects a positive reward at the level its returns set (gain < 2), and a negative one above 2."""
    x = edge * 0.3 + 0.3 * np.random.default_rng(0).standard_normal(200_000)  # scaled returns, edge in sds
    mean, mean_square = float(x.mean()), float(np.mean(x**2))
    for gain, pays in ((1.9, True), (2.1, False)):
        level = sharpe_risk_aversion(mean, mean_square, gain=gain, floor=0.0)
        assert (mean - level * mean_square > 0) is pays


def test_where_the_edge_lives_in_a_tenth_of_the_bars_holding_the_others_costs_more_than_the_floor():
    """A volume-surge-like market: the edge on 10% of bars. At the level an agent trading only those bars sets,
    a bar without edge costs more reward than the fixed floor charges, and a bar with the edge still pays."""
    rng = np.random.default_rng(1)
    sigma, surge_edge = 0.3, 0.15
    on_surges = surge_edge + sigma * rng.standard_normal(20_000)
    returns = np.zeros(200_000)
    returns[:20_000] = on_surges  # flat on the other bars: their returns are 0
    level = sharpe_risk_aversion(float(returns.mean()), float(np.mean(returns**2)), gain=1.9, floor=0.0773)
    assert level > 5 * 0.0773
    assert surge_edge - level * (sigma**2 + surge_edge**2) > 0  # the surge bar still pays
    assert -level * sigma**2 < -5 * 0.0773 * sigma**2  # a bar with no edge costs over 5x what the floor charges


class _Logger:
    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def record(self, key: str, value: float) -> None:
        self.values[key] = value


class _Model:
    def __init__(self) -> None:
        self.logger = _Logger()


@pytest.mark.parametrize("gain", [0.0, 1.9])
def test_the_hook_sets_the_next_rollouts_risk_aversion_from_the_returns_of_the_last(prepared_market, config, gain):
    """Stepped with a policy that earns in one rollout, the hook moves the level to gain x A / (2 B) of that
    rollout's returns (computed here from an unpenalized twin of the accounts); after a flat rollout it is back at
    the floor. With a gain of 0 the level stays at the floor and is only recorded."""
    from rltrader.env.vec_env import VecTradingEnv
    from rltrader.training.risk_aversion import SharpeRiskAversion

    floor = 0.0773
    averse = VecTradingEnv(prepared_market, "train", config.env.model_copy(update={"risk_aversion": floor}), 4)
    plain = VecTradingEnv(prepared_market, "train", config.env.model_copy(update={"risk_aversion": 0.0}), 4)
    for env in (averse, plain):
        env.seed(3)
        env.reset()
    hook, model = SharpeRiskAversion(averse, gain, floor), _Model()
    market = prepared_market

    def peeking() -> np.ndarray:  # a policy that earns: it sees the move of the bar it fills on
        nxt = averse.bar + 1
        return np.where(market.close[nxt] >= market.open[nxt], 2, 0)

    returns = []
    for _ in range(256):
        actions = peeking()
        returns.append(plain.step(actions)[1].astype(np.float64))
        averse.step(actions)
    x = np.concatenate(returns)
    hook(model, 0)
    expected = max(floor, gain * x.mean() / (2 * np.mean(x**2))) if gain else floor
    assert expected > 2 * floor or not gain  # an earning rollout raises the level well above the floor
    assert averse.risk_aversion == pytest.approx(expected, rel=1e-5)
    assert model.logger.values["train/risk_aversion"] == averse.risk_aversion
    for _ in range(64):
        averse.step(np.full(4, 1))  # flat: nothing earned, nothing moved
    hook(model, 0)
    assert averse.risk_aversion == floor
