"""``TradingEnv``: one account trading one instrument over one split, gymnasium API.

Observation: the last ``window_size`` bars of normalized features, flattened, then the
position (-1, 0, +1) and the unrealized PnL in percent of equity; float32, a new array
every step. Action: Discrete(3) target position, 0 short, 1 flat, 2 long, each a full
position as the account's sizing says (:mod:`rltrader.env.account`). The execution model
(fill at the next open, costs, swap, conversion) is in :mod:`rltrader.env.market`.
Reward: change of equity net of costs, log or relative, times ``reward_scale``; less
``risk_aversion`` times its square (a mean-variance utility: see ``EnvConfig.risk_aversion``).

``step`` is plain Python arithmetic over table lookups (no pandas, no numpy ufuncs on
scalars): it is the inner loop of training and of the reference evaluator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rltrader.config import EnvConfig
from rltrader.env.market import (
    ACTION_SIGNS,
    CLOSE_COLUMN,
    CLOSE_RATE,
    FLAT,
    N_ACTIONS,
    MarketData,
)
from rltrader.errors import ConfigError
from rltrader.features.splits import SPLIT_NAMES

#: Equity ratios are clamped here before the log: a step that wipes the account out
#: gets a large finite penalty, not -inf or NaN.
MIN_EQUITY_RATIO = 1e-12


@dataclass(frozen=True)
class EpisodeBounds:
    """Bars of a split an episode may use; ``first`` is the first bar with a full window.

    A split is usually one stretch of bars. A combinatorial purged cross-validation split trains
    on several (the groups it does not test, cut by purges and embargoes): ``segments`` holds
    each stretch's ``(first, last)``, an episode starts in one of them, uniformly over every
    start the stretches allow, and never runs past that stretch's last bar, so no step spans a
    purged or tested gap. With one stretch, ``segments == ((first, last),)`` and episodes are
    drawn exactly as before (one ``integers`` draw per episode)."""

    first: int
    last: int  # the last bar; no step can start there (no next open)
    window: int
    episode_length: int | None
    random_start: bool
    segments: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, market: MarketData, split: str, config: EnvConfig) -> EpisodeBounds:
        start, stop = market.rows(split)
        stretches = split_stretches(market, split, start, stop)
        segments = tuple((max(a, config.window_size - 1), b - 1) for a, b in stretches)
        segments = tuple((first, last) for first, last in segments if last - first >= 1)
        if not segments:
            raise ConfigError(
                f"split {split!r} has {stop - start} bars, too few for env.window_size={config.window_size}; "
                "use more data or a smaller window"
            )
        return cls(segments[0][0], segments[-1][1], config.window_size, config.episode_length, config.random_start,
                   segments)

    @classmethod
    def whole(cls, market: MarketData, split: str, config: EnvConfig) -> EpisodeBounds:
        """The bounds of an evaluation over the whole split, which must be one stretch of bars: evaluating
        across a purged or tested gap would trade bars that belong to no split."""
        bounds = cls.of(market, split, config)
        if not bounds.contiguous:
            raise ConfigError(f"split {split!r} is {len(bounds.segments)} stretches of bars; evaluate each stretch "
                              "on its own (a market with that stretch as the split)")
        return bounds

    @property
    def contiguous(self) -> bool:
        """One stretch of bars (what an evaluation over the whole split needs)."""
        return len(self.segments) <= 1

    def _latest_start(self, first: int, last: int) -> int:
        length = self.episode_length
        return first if length is None else max(first, last - length)

    def start_and_end(self, rng: np.random.Generator) -> tuple[int, int]:
        """First bar and truncation bar of a new episode, drawing the start from ``rng``."""
        if self.contiguous:
            first, last = self.first, self.last
            start = int(rng.integers(first, self._latest_start(first, last) + 1)) if self.random_start else first
        else:
            starts = [self._latest_start(first, last) - first + 1 for first, last in self.segments]
            draw = int(rng.integers(0, sum(starts))) if self.random_start else 0
            for (first, _), count in zip(self.segments, starts, strict=True):
                if draw < count:
                    start = first + draw
                    break
                draw -= count
        last = next(last for first, last in self.segments if first <= start <= last) if self.segments else self.last
        end = last if self.episode_length is None else min(last, start + self.episode_length)
        return start, end


def split_stretches(market: MarketData, split: str, start: int, stop: int) -> list[tuple[int, int]]:
    """The ``[a, b)`` runs of ``split``'s rows within ``[start, stop)``, by the market's split codes.

    A market whose codes do not mark the split (a frame built without them) is one stretch."""
    code = SPLIT_NAMES.index(split) if split in SPLIT_NAMES else None
    marked = market.split_codes[start:stop] == code if code is not None else np.zeros(0, dtype=bool)
    if not marked.any():
        return [(start, stop)]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], marked.astype(np.int8), [0]))))
    return [(start + int(a), start + int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def evaluation_config(config: EnvConfig) -> EnvConfig:
    """The same account and costs, run over a whole split as one episode, never stopped early."""
    return config.model_copy(update={"random_start": False, "episode_length": None, "max_drawdown": None})


class TradingEnv(gym.Env[np.ndarray, np.int64]):
    """Trade one split of ``market`` bar by bar. See the module docstring for the rules."""

    metadata = {"render_modes": []}
    render_mode = None

    def __init__(self, market: MarketData, split: str = "train", config: EnvConfig | None = None) -> None:
        """One account trading one split of ``market``.

        :param market: the prepared market (features, step table, costs in the account currency)
        :param split: ``train``, ``validation`` or ``test``: the rows an episode may start and run in
        :param config: window size, episode length, reward, drawdown limit (default: ``EnvConfig()``)
        """
        self.market = market
        self.split = split
        self.config = config or EnvConfig()
        self.bounds = EpisodeBounds.of(market, split, self.config)
        window, n_features = self.config.window_size, market.n_features
        self._window_values = window * n_features
        self._n_features = n_features
        self._flat_features = market.features.reshape(-1)
        self._table = market.step_table
        self._converts = market.converts
        self._signs = [float(s) for s in ACTION_SIGNS]
        self._fraction_sizing = market.fraction_sizing
        self._size = market.size
        self._keep = 1.0 - self.config.max_drawdown if self.config.max_drawdown is not None else 0.0
        self._log_reward = self.config.reward == "log"
        self._scale = self.config.reward_scale
        self._risk_aversion = self.config.risk_aversion
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self._window_values + 2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self._t = self.bounds.first
        self._end = self.bounds.last
        self._held = FLAT
        self._units = 0.0
        self._equity = self._peak = self.config.initial_balance
        self._entry = 0.0

    # -- state a user may read -------------------------------------------------------
    @property
    def bar(self) -> int:
        """Row of the bar whose close the agent has just seen."""
        return self._t

    @property
    def equity(self) -> float:
        return self._equity

    @property
    def position(self) -> float:
        """Units held now (negative when short)."""
        return self._units

    # -- gymnasium API ----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t, self._end = self.bounds.start_and_end(self.np_random)
        self._held = FLAT
        self._units = 0.0
        self._equity = self._peak = self.config.initial_balance
        self._entry = 0.0
        return self._observation(0.0), {}

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = int(action)
        if not 0 <= action < N_ACTIONS:
            raise ValueError(f"action must be 0 (short), 1 (flat) or 2 (long), got {action}")
        t = self._t + 1
        held, units = self._held, self._units
        equity_before = self._equity
        # rltrader.env.market.step_profit, inlined (the hot path), in the compiled steps' order;
        # one tolist() reads the bar's nine table values for the price of two .item() calls
        gap, body, cost, swap_long, swap_short, notional, open_, close, rate = self._table[t].tolist()
        if action == held:
            target = units
        elif self._fraction_sizing:
            worth = equity_before if equity_before > 0.0 else 0.0  # a bankrupt account opens nothing
            target = self._signs[action] * (self._size * worth / notional)
        else:
            target = self._signs[action] * self._size
        swap = units * swap_long if units > 0 else -units * swap_short
        profit = units * gap + target * body - abs(target - units) * cost - swap
        if units and self._converts:  # otherwise the revaluation is 0.0, and adding it changes no equity
            previous = self._table[t - 1]
            profit += units * (previous.item(CLOSE_COLUMN) - self._entry) * (rate - previous.item(CLOSE_RATE))
        equity = equity_before + profit
        if self._log_reward:
            ratio = equity / equity_before
            reward = math.log(ratio if ratio > MIN_EQUITY_RATIO else MIN_EQUITY_RATIO) * self._scale
        else:
            reward = (equity - equity_before) / equity_before * self._scale
        reward -= self._risk_aversion * reward * reward
        if equity > self._peak:  # noqa: PLR1730 - the hot path; max() costs a call
            self._peak = equity
        if action != held:
            self._entry = open_
        self._t, self._held, self._units, self._equity = t, action, target, equity
        terminated = equity <= self._peak * self._keep
        truncated = t >= self._end
        unrealized = 100.0 * target * (close - self._entry) * rate
        unrealized_pct = unrealized / equity if equity else 0.0
        info = {"equity": equity} if terminated or truncated else {}
        return self._observation(unrealized_pct), reward, terminated, truncated, info

    def _observation(self, unrealized_pct: float) -> np.ndarray:
        n = self._window_values
        start = (self._t + 1) * self._n_features - n
        obs = np.empty(n + 2, dtype=np.float32)
        obs[:n] = self._flat_features[start : start + n]
        obs[n] = self._signs[self._held]
        obs[n + 1] = unrealized_pct
        return obs


__all__ = ["MIN_EQUITY_RATIO", "EpisodeBounds", "TradingEnv", "evaluation_config", "split_stretches"]
