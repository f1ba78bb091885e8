"""Trading environments over the cached feature arrays: one account, or N stepped together.

The names load on first use (PEP 562): ``rltrader.env.account``, which the commands ask before
anything heavy starts, must not import torch and stable-baselines3 through ``vec_env``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rltrader.env.market import ACTION_NAMES, ACTION_SIGNS, FLAT, MarketData
    from rltrader.env.trading_env import TradingEnv, evaluation_config
    from rltrader.env.vec_env import VecTradingEnv

_HOMES = {"ACTION_NAMES": "market", "ACTION_SIGNS": "market", "FLAT": "market", "MarketData": "market",
          "TradingEnv": "trading_env", "evaluation_config": "trading_env", "VecTradingEnv": "vec_env"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = ["ACTION_NAMES", "ACTION_SIGNS", "FLAT", "MarketData", "TradingEnv", "VecTradingEnv", "evaluation_config"]
