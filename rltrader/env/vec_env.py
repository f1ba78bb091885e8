"""``VecTradingEnv``: N trading accounts stepped together with a handful of numpy calls.

It implements stable-baselines3's ``VecEnv`` interface itself (auto-reset, the
``terminal_observation`` and ``TimeLimit.truncated`` infos), so ``RecurrentPPO`` trains on
it directly, without ``DummyVecEnv``'s Python loop over N environments. Each account has
its own random generator, seeded as ``DummyVecEnv`` seeds its members (seed + index), and
every number comes from the same lookup tables and the same arithmetic, in the same order,
as :class:`~rltrader.env.trading_env.TradingEnv`: the trajectories are those of N
independent ``TradingEnv``\\ s, bit for bit (``tests/test_env.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from rltrader.config import EnvConfig
from rltrader.env.market import ACTION_SIGNS, FLAT, N_ACTIONS, MarketData
from rltrader.env.trading_env import MIN_EQUITY_RATIO, EpisodeBounds

#: Attributes that differ per account: ``get_attr`` returns one value per environment.
PER_ENV_ATTRIBUTES = ("equity", "position", "bar")


class VecTradingEnv(VecEnv):
    """``num_envs`` independent accounts on one split of ``market``."""

    render_mode = None

    def __init__(self, market: MarketData, split: str = "train", config: EnvConfig | None = None,
                 num_envs: int = 8) -> None:
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        self.market = market
        self.split = split
        self.config = config or EnvConfig()
        self.bounds = EpisodeBounds.of(market, split, self.config)
        window = self.config.window_size
        self._window_values = window * market.n_features
        self._windows = market.windows(window)
        self._window_offset = window - 1
        self._step_pnl = market.step_pnl.reshape(-1)
        self._open = market.open
        self._close = market.close
        self._signs = ACTION_SIGNS.astype(np.float32)
        self._units_pct = 100.0 * ACTION_SIGNS * market.position_size
        self._keep = 1.0 - self.config.max_drawdown if self.config.max_drawdown is not None else 0.0
        self._log_reward = self.config.reward == "log"
        self._scale = self.config.reward_scale
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self._window_values + 2,), dtype=np.float32)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._t = np.full(num_envs, self.bounds.first, dtype=np.int64)
        self._end = np.full(num_envs, self.bounds.last, dtype=np.int64)
        self._held = np.full(num_envs, FLAT, dtype=np.int64)
        self._equity = np.full(num_envs, self.config.initial_balance)
        self._peak = self._equity.copy()
        self._entry = np.zeros(num_envs)
        self._actions = np.full(num_envs, FLAT, dtype=np.int64)
        super().__init__(num_envs, observation_space, gym.spaces.Discrete(N_ACTIONS))

    # -- state a user may read -------------------------------------------------------
    @property
    def equity(self) -> np.ndarray:
        return self._equity.copy()

    @property
    def position(self) -> np.ndarray:
        """Units held by each account (negative when short)."""
        return ACTION_SIGNS[self._held] * self.market.position_size

    @property
    def bar(self) -> np.ndarray:
        return self._t.copy()

    # -- VecEnv API ---------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self._window_values + 2), dtype=np.float32)
        for index in range(self.num_envs):
            self._reset_account(index, self._seeds[index], obs)
            self.reset_infos[index] = {}
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        codes = actions
        if not (isinstance(codes, np.ndarray) and codes.dtype == np.int64 and codes.shape == (self.num_envs,)):
            codes = np.asarray(actions).astype(np.int64).reshape(self.num_envs)
        if np.count_nonzero(codes.view(np.uint64) >= N_ACTIONS):  # negative codes are huge as unsigned
            raise ValueError(f"actions must be 0 (short), 1 (flat) or 2 (long), got {codes.tolist()}")
        self._actions = codes.copy()  # it becomes the held position: never alias the caller's buffer

    def step_wait(self) -> VecEnvStepReturn:
        actions = self._actions
        t = self._t + 1
        equity_before = self._equity
        equity = equity_before + self._step_pnl.take(t * 9 + self._held * 3 + actions)
        if self._log_reward:
            reward = np.log(np.maximum(equity / equity_before, MIN_EQUITY_RATIO))
        else:
            reward = (equity - equity_before) / equity_before
        reward *= self._scale
        np.maximum(self._peak, equity, out=self._peak)
        self._entry = np.where(actions != self._held, self._open.take(t), self._entry)
        obs = np.empty((self.num_envs, self._window_values + 2), dtype=np.float32)
        obs[:, : self._window_values] = self._windows[t - self._window_offset]
        obs[:, -2] = self._signs.take(actions)
        obs[:, -1] = (self._units_pct.take(actions) * (self._close.take(t) - self._entry)) / equity
        self._t, self._held, self._equity = t, actions, equity
        terminated = equity <= self._peak * self._keep
        truncated = t >= self._end
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if np.count_nonzero(dones):
            for index in np.flatnonzero(dones):
                infos[index] = {
                    "equity": float(equity[index]),
                    "TimeLimit.truncated": bool(truncated[index] and not terminated[index]),
                    "terminal_observation": obs[index].copy(),
                }
                self._reset_account(index, None, obs)
        return obs, reward.astype(np.float32), dones, infos

    def _reset_account(self, index: int, seed: int | None, obs: np.ndarray) -> None:
        """Start a new episode for one account, as ``TradingEnv.reset`` does, writing its observation."""
        if seed is not None or self._rngs[index] is None:
            self._rngs[index], _ = seeding.np_random(seed)
        start, end = self.bounds.start_and_end(self._rngs[index])
        self._t[index], self._end[index] = start, end
        self._held[index] = FLAT
        self._equity[index] = self._peak[index] = self.config.initial_balance
        self._entry[index] = 0.0
        obs[index, : self._window_values] = self._windows[start - self._window_offset]
        obs[index, -2:] = 0.0

    def close(self) -> None:
        """Nothing to release: the arrays belong to the shared ``MarketData``."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        targets = list(self._get_indices(indices))
        value = getattr(self, attr_name)
        if attr_name in PER_ENV_ATTRIBUTES:
            return [value[i].item() for i in targets]
        return [value for _ in targets]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"VecTradingEnv shares one configuration; cannot set {attr_name!r} per environment")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


__all__ = ["VecTradingEnv"]
