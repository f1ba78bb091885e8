"""The reward's risk aversion, set before each update from what the agent earned in the rollout before.

Why: the reward is the mean-variance utility x - c x**2 of each bar's scaled return x, and the figure a
user judges is the Sharpe ratio. For a fixed c the two disagree wherever the edge lives in a minority of
bars (a volume surge, a calm spell): holding through a bar with no edge costs c sigma**2 of reward, small
beside the noise, so the agent holds and the noise costs it most of its Sharpe (on the volume kind it
holds through 97% of the bars without edge: bench/README.md, learning_curves). The differential Sharpe ratio (Moody
and Saffell, 1998), the Sharpe ratio's own gradient in one more return R, is proportional to
R - (A / (2 B)) R**2 for the mean A and mean square B of the returns so far: a mean-variance utility
whose risk aversion is A / (2 B). So ``c = k A / (2 B)`` makes each bar's reward its contribution to the
agent's Sharpe: no penalty beyond the floor while the agent earns nothing, a growing one as it finds an
edge, and holding a bar pays only if the bar's edge is at least k / 2 of the agent's average return per
unit of variance. A gain k above 1 moves the risk aversion ahead of the agent (A / (2 B) of an agent that
still holds every bar understates the level its own best policy would have); below 2 a market whose edge
is the same on every bar is never priced out (the break-even level there is A / B).
"""

from __future__ import annotations

from typing import Any

from rltrader.env.vec_env import VecTradingEnv
from rltrader.runtime.hooks import UpdateHook


def sharpe_risk_aversion(mean: float, mean_square: float, gain: float, floor: float) -> float:
    """``max(floor, gain * mean / (2 * mean_square))``: the floor where nothing was earned or nothing moved.

    :param mean: mean scaled return of the rollout (before the penalty)
    :param mean_square: mean of its squares
    :param gain: ``EnvConfig.risk_aversion_gain``
    :param floor: ``EnvConfig.risk_aversion``
    """
    if mean_square <= 0.0:
        return floor
    return max(floor, gain * mean / (2.0 * mean_square))


class SharpeRiskAversion(UpdateHook):
    """Before each update, sets the training env's risk aversion for the next rollout from the rollout just
    collected (its every account step, pooled), and records it as ``train/risk_aversion``; with a gain of 0 it
    only records the fixed level. The level lives in the process's training env, not in checkpoints: a resumed
    run starts again from the floor and rises with the first updates that earn."""

    def __init__(self, env: VecTradingEnv, gain: float, floor: float) -> None:
        """
        :param env: the training accounts, whose reward this sets
        :param gain: ``EnvConfig.risk_aversion_gain`` (0: the level stays at ``floor``)
        :param floor: ``EnvConfig.risk_aversion``: the level at the start and the least it falls to
        """
        self.env, self.gain, self.floor = env, gain, floor

    def __call__(self, model: Any, timesteps_done: int) -> None:
        mean, mean_square, count = self.env.take_return_moments()
        if count and self.gain > 0:
            self.env.risk_aversion = sharpe_risk_aversion(mean, mean_square, self.gain, self.floor)
        model.logger.record("train/risk_aversion", self.env.risk_aversion)


__all__ = ["SharpeRiskAversion", "sharpe_risk_aversion"]
