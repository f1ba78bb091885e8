"""``VecTradingEnv``: N trading accounts stepped together by one compiled call.

It implements stable-baselines3's ``VecEnv`` interface itself (auto-reset, the
``terminal_observation`` and ``TimeLimit.truncated`` infos), so ``RecurrentPPO`` trains on
it directly, without ``DummyVecEnv``'s Python loop over N environments. Each account has
its own random generator, seeded as ``DummyVecEnv`` seeds its members (seed + index), and
every number comes from the same lookup tables and the same arithmetic, in the same order,
as :class:`~rltrader.env.trading_env.TradingEnv`: the trajectories are those of N
independent ``TradingEnv``\\ s, bit for bit (``tests/test_env.py`` checks it). The step
itself is :func:`rltrader.engine.kernels.accounts.step_accounts`; what stays in Python is what SB3
needs as Python objects (the infos) and the rare resets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from rltrader.config import EnvConfig
from rltrader.engine.kernels import accounts
from rltrader.engine.kernels.accounts import BAR, END, EQUITY, HELD, PEAK, TERMINATED, UNITS, step_accounts
from rltrader.env.market import FLAT, N_ACTIONS, MarketData
from rltrader.env.trading_env import EpisodeBounds

#: Attributes that differ per account: ``get_attr`` returns one value per environment.
PER_ENV_ATTRIBUTES = ("equity", "position", "bar")


class VecTradingEnv(VecEnv):
    """``num_envs`` independent accounts on one split of ``market``."""

    render_mode = None

    def __init__(self, market: MarketData, split: str = "train", config: EnvConfig | None = None,
                 num_envs: int = 8) -> None:
        """``num_envs`` accounts stepped by one compiled call, each as a ``TradingEnv`` would step alone.

        :param market: the prepared market
        :param split: ``train``, ``validation`` or ``test``
        :param config: window size, episode length, reward, drawdown limit (default: ``EnvConfig()``)
        :param num_envs: accounts stepped together (``training.n_envs``)
        """
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        self.market = market
        self.split = split
        self.config = config or EnvConfig()
        self.bounds = EpisodeBounds.of(market, split, self.config)
        self._window_values = self.config.window_size * market.n_features
        self._windows = market.windows(self.config.window_size)
        self._window_offset = self.config.window_size - 1
        params = np.zeros(accounts.N_PARAMS)
        params[accounts.KEEP] = 1.0 - self.config.max_drawdown if self.config.max_drawdown is not None else 0.0
        params[accounts.SCALE] = self.config.reward_scale
        params[accounts.LOG_REWARD] = float(self.config.reward == "log")
        params[accounts.RISK_AVERSION] = self.config.risk_aversion
        params[accounts.FRACTION_SIZING] = float(market.fraction_sizing)
        params[accounts.SIZE] = market.size
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self._window_values + 2,), dtype=np.float32)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        # Account state, one row per account: columns accounts.BAR/END/HELD/TERMINATED and EQUITY/PEAK/ENTRY/UNITS.
        self._ints = np.zeros((num_envs, 4), dtype=np.int64)
        self._ints[:, BAR], self._ints[:, END], self._ints[:, HELD] = self.bounds.first, self.bounds.last, FLAT
        self._floats = np.zeros((num_envs, 4))
        self._floats[:, EQUITY] = self._floats[:, PEAK] = self.config.initial_balance
        self._actions = np.full(num_envs, FLAT, dtype=np.int64)
        self._params = params
        self._kernel_inputs = (self._ints, self._floats, market.step_table, market.features, params)
        self._observation_size = self._window_values + 2
        self._blank_infos: list[dict[str, Any]] = [{}] * num_envs  # copied, never handed out
        super().__init__(num_envs, observation_space, gym.spaces.Discrete(N_ACTIONS))

    # -- state a user may read -------------------------------------------------------
    @property
    def equity(self) -> np.ndarray:
        return self._floats[:, EQUITY].copy()

    @property
    def position(self) -> np.ndarray:
        """Units held by each account (negative when short)."""
        return self._floats[:, UNITS].copy()

    @property
    def bar(self) -> np.ndarray:
        return self._ints[:, BAR].copy()

    @property
    def risk_aversion(self) -> float:
        """The penalty on each scaled return's square in the reward now (``EnvConfig.risk_aversion`` at the start;
        the training may move it between rollouts: :mod:`rltrader.training.risk_aversion`)."""
        return float(self._params[accounts.RISK_AVERSION])

    @risk_aversion.setter
    def risk_aversion(self, value: float) -> None:
        self._params[accounts.RISK_AVERSION] = value

    def take_return_moments(self) -> tuple[float, float, int]:
        """Mean and mean square of the scaled returns (before the risk penalty) of every account step since the
        last call, and how many steps that was; the sums start again from zero."""
        total, squares, count = (float(self._params[index]) for index in accounts.RETURN_MOMENTS)
        self._params[list(accounts.RETURN_MOMENTS)] = 0.0
        return (total / count, squares / count, int(count)) if count else (0.0, 0.0, 0)

    # -- VecEnv API ---------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self._observation_size), dtype=np.float32)
        for index in range(self.num_envs):
            self._reset_account(index, self._seeds[index], obs)
            self.reset_infos[index] = {}
        self._reset_seeds()
        self._reset_options()
        return obs

    def step(self, actions: np.ndarray) -> VecEnvStepReturn:
        """``step_async`` and ``step_wait`` in one call: a whole step takes microseconds, so each layer counts."""
        return self._advance(self._action_codes(actions))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._action_codes(actions).copy()  # the caller may reuse its buffer before step_wait

    def step_wait(self) -> VecEnvStepReturn:
        return self._advance(self._actions)

    def _action_codes(self, actions: np.ndarray) -> np.ndarray:
        if isinstance(actions, np.ndarray) and actions.dtype == np.int64 and actions.shape == (self.num_envs,):
            return actions
        return np.asarray(actions).astype(np.int64).reshape(self.num_envs)

    def _advance(self, actions: np.ndarray) -> VecEnvStepReturn:
        n = self.num_envs
        obs = np.empty((n, self._observation_size), dtype=np.float32)  # fresh arrays: SB3 keeps them
        rewards = np.empty(n, dtype=np.float32)
        dones = np.empty(n, dtype=np.bool_)
        ended = step_accounts(actions, *self._kernel_inputs, obs, rewards, dones)
        if ended < 0:
            raise ValueError(f"actions must be 0 (short), 1 (flat) or 2 (long), got {actions.tolist()}")
        infos: list[dict[str, Any]] = [*map(dict.copy, self._blank_infos)]  # a new dict each, fastest way
        if ended:
            for index in np.flatnonzero(dones).tolist():
                infos[index] = {
                    "equity": float(self._floats[index, EQUITY]),
                    "TimeLimit.truncated": not self._ints[index, TERMINATED],
                    "terminal_observation": obs[index].copy(),
                }
                self._reset_account(index, None, obs)
        return obs, rewards, dones, infos

    def _reset_account(self, index: int, seed: int | None, obs: np.ndarray) -> None:
        """Start a new episode for one account, as ``TradingEnv.reset`` does, writing its observation."""
        if seed is not None or self._rngs[index] is None:
            self._rngs[index], _ = seeding.np_random(seed)
        start, end = self.bounds.start_and_end(self._rngs[index])
        self._ints[index] = start, end, FLAT, 0
        self._floats[index] = self.config.initial_balance, self.config.initial_balance, 0.0, 0.0
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
