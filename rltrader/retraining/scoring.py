"""Score a bundle on a window of a bar file: what it would have earned there, bar by bar, with given costs.

Champion and challenger are scored by the same code: each bundle's decision stream
(:class:`~rltrader.live.stream.DecisionStream`, proven equal to the fast evaluator bar by bar) warms
its features up on the bars before the window with its *own* feature definition and train-split
normalization, starts flat with a fresh LSTM state at the window's first bar, decides at each close
and fills at the next open. So each model is scored exactly as it would trade, and the
challenger's figures here equal its own run's test report (:func:`score_bundle` returns the final
equity for that check).

Costs: both are charged the costs given (the challenger's current config), whatever costs the
champion trained with, so a change of broker terms cannot favour one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.bundle import Bundle
from rltrader.config import CostConfig
from rltrader.data.bar_arrays import BarArrays
from rltrader.evaluation.metrics import max_drawdown
from rltrader.evaluation.significance import sharpe_estimate
from rltrader.live.stream import DecisionStream


def equity_figures(equity: np.ndarray, bars_per_year: float) -> dict[str, Any]:
    """Final equity, return, Sharpe with its 95% interval and max drawdown of an equity curve (its first
    value the starting balance), per-bar returns counted as the backtest's metrics count them."""
    equity = np.asarray(equity, dtype=np.float64)
    estimate = sharpe_estimate(equity[1:] / equity[:-1] - 1.0, bars_per_year)
    interval = None if estimate.low is None else [estimate.low, estimate.high]
    return {"final_equity": float(equity[-1]), "total_return": float(equity[-1] / equity[0] - 1),
            "sharpe": estimate.sharpe, "sharpe_interval": interval, "max_drawdown": float(max_drawdown(equity))}


@dataclass(frozen=True)
class WindowScore:
    """A model's account over a window: equity at each bar's close (the first is the initial balance).

    :param equity: equity at the close of each bar of the window (decisions at bars 0..n-2 filled)
    :param actions: the action decided at each bar (0 short, 1 flat, 2 long)
    """

    equity: np.ndarray
    actions: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """Per-bar returns, as the backtest's metrics count them."""
        return self.equity[1:] / self.equity[:-1] - 1.0

    def figures(self, bars_per_year: float) -> dict[str, Any]:
        """Return, Sharpe with its 95% interval, drawdown and position changes."""
        return {**equity_figures(self.equity, bars_per_year),
                "position_changes": int((np.diff(np.concatenate(([1], self.actions[:-1]))) != 0).sum())}


def window_rows(bars: BarArrays, start: str, end: str) -> tuple[int, int]:
    """The rows of ``bars`` whose open times are ``start`` and ``end`` (inclusive)."""
    first_time, last_time = (int(np.datetime64(value, "ns").astype(np.int64)) for value in (start, end))
    first, last = (int(np.searchsorted(bars.timestamps, stamp)) for stamp in (first_time, last_time))
    if last >= len(bars) or bars.timestamps[first] != first_time or bars.timestamps[last] != last_time:
        raise ValueError(f"the bars do not hold the window {start} .. {end}")
    return first, last


def score_bundle(bundle: Bundle, bars: BarArrays, first: int, last: int, costs: CostConfig) -> WindowScore:
    """Trade ``bundle`` over rows ``first..last`` of ``bars`` with ``costs`` (see the module docstring).

    :param bundle: the model
    :param bars: the whole bar file (the rows before ``first`` warm the features up)
    :param first: row of the window's first bar: the first decision, flat, with a fresh LSTM state
    :param last: row of the window's last bar (the last decision made there is never filled)
    :param costs: what every fill and night costs
    """
    warmup = bundle.description.warmup_bars
    if first < warmup:
        raise ValueError(f"the window starts at row {first}, before the {warmup} bars of warm-up the model needs")
    stream = DecisionStream(bundle, int(bars.timestamps[first]))
    stream.costs = costs
    stream.advance(bars.rows(first - warmup, first))
    batch = stream.advance(bars.rows(first, last + 1))
    return WindowScore(equity=np.asarray(batch.equity, dtype=np.float64), actions=np.asarray(batch.actions))


__all__ = ["WindowScore", "equity_figures", "score_bundle", "window_rows"]
