"""The reference evaluator: ``model.predict`` bar by bar in a ``TradingEnv``.

It is the obviously-correct yardstick the fast evaluator is tested against: the LSTM
state is carried from step to step and ``episode_start`` is true only on the first bar,
exactly as sb3-contrib documents for recurrent policies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrader.config import EnvConfig
from rltrader.env import MarketData, TradingEnv, evaluation_config


def reference_actions(model: Any, market: MarketData, split: str, config: EnvConfig) -> np.ndarray:
    """Deterministic actions of ``model`` over the whole ``split``, one ``predict`` per bar."""
    env = TradingEnv(market, split, evaluation_config(config))
    obs, _ = env.reset()
    state = None
    episode_start = np.ones(1, dtype=bool)
    not_start = np.zeros(1, dtype=bool)
    actions: list[int] = []
    done = False
    while not done:
        action, state = model.predict(obs, state=state, episode_start=episode_start, deterministic=True)
        actions.append(int(action))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        episode_start = not_start
        done = terminated or truncated
    return np.asarray(actions, dtype=np.int64)


__all__ = ["reference_actions"]
