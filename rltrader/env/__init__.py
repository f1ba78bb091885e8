"""Trading environments over the cached feature arrays: one account, or N stepped together."""

from rltrader.env.market import ACTION_NAMES, ACTION_SIGNS, FLAT, MarketData
from rltrader.env.trading_env import TradingEnv, evaluation_config
from rltrader.env.vec_env import VecTradingEnv

__all__ = ["ACTION_NAMES", "ACTION_SIGNS", "FLAT", "MarketData", "TradingEnv", "VecTradingEnv", "evaluation_config"]
