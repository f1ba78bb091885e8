"""Performance metrics of a ledger, annualized with the data's own bars per year.

A 15-minute gold series trades about 23,500 bars a year and an hourly one about 5,900:
annualizing either with 252 would misstate Sharpe by a factor of ten, so the factor is
the one measured on the file (``metadata["bars"]["bars_per_year"]``).

Undefined ratios (a Sharpe ratio with no variance, a profit factor with no losing trade)
are ``None``, never a made-up number or ``inf`` (which JSON cannot hold).

Every Sharpe comes with its standard error and 95% interval
(:mod:`rltrader.evaluation.significance`), and the span it was measured on. CAGR and
Calmar are not given for spans under ``MIN_ANNUALIZED_DAYS``: two weeks compounded to a
year is a number without meaning (the period's total return is shown instead).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rltrader.env.market import MarketData
from rltrader.evaluation.ledger import Ledger, trade_pnls
from rltrader.evaluation.significance import sharpe_estimate

#: Shorter spans get no CAGR or Calmar.
MIN_ANNUALIZED_DAYS = 90.0


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 and math.isfinite(numerator) else None


def _cagr(growth: float, years: float) -> float | None:
    """Compound annual growth; ``None`` when the span is empty or the figure overflows a float
    (a few days of a lucky short split can annualize past 1e300)."""
    if not years > 0:
        return None
    if growth <= 0:
        return -1.0
    exponent = math.log(growth) / years
    return math.expm1(exponent) if exponent < 700 else None


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak."""
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks)) if len(equity) else 0.0


def drawdown_curve(equity: np.ndarray) -> np.ndarray:
    return 1.0 - equity / np.maximum.accumulate(equity)


def compute_metrics(ledger: Ledger, market: MarketData, first_bar: int) -> dict[str, Any]:
    """Return, risk and trading statistics of one ledger (see the module docstring)."""
    equity = ledger.equity
    steps = ledger.steps
    bars_per_year = market.bars_per_year
    returns = equity[1:] / equity[:-1] - 1.0 if steps else np.zeros(0)
    growth = equity[-1] / equity[0]
    years = steps / bars_per_year if bars_per_year > 0 else float("nan")
    span_days = float((ledger.timestamps[-1] - ledger.timestamps[0]) / np.timedelta64(1, "D")) if steps else 0.0
    cagr = _cagr(float(growth), years) if span_days >= MIN_ANNUALIZED_DAYS else None
    estimate = sharpe_estimate(returns, bars_per_year)
    mean = float(returns.mean()) if steps else 0.0
    std = float(returns.std(ddof=1)) if steps > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if steps else 0.0
    annual = math.sqrt(bars_per_year)
    drawdown = max_drawdown(equity)
    pnls, lengths = trade_pnls(market, first_bar, ledger)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    held = ledger.positions[1:] != 0
    bar_hours = float(np.median(np.diff(ledger.timestamps)) / np.timedelta64(1, "h")) if steps else 0.0
    trade_costs, swap_costs = float(ledger.trade_costs.sum()), float(ledger.swap_costs.sum())
    return {
        "final_equity": float(equity[-1]),
        "total_return": float(growth - 1.0),
        "cagr": None if cagr is None else float(cagr),
        "sharpe": _ratio(mean * annual, std),
        "sharpe_se": estimate.standard_error,
        "sharpe_interval": None if estimate.low is None else [estimate.low, estimate.high],
        "sortino": _ratio(mean * annual, downside),
        "max_drawdown": drawdown,
        "calmar": None if cagr is None else _ratio(float(cagr), drawdown),
        "trades": len(pnls),
        "win_rate": float(len(wins) / len(pnls)) if len(pnls) else None,
        "profit_factor": _ratio(float(wins.sum()), float(-losses.sum())),
        "avg_holding_bars": float(lengths.mean()) if len(lengths) else None,
        "avg_holding_hours": float(lengths.mean() * bar_hours) if len(lengths) else None,
        "exposure": float(held.mean()) if steps else 0.0,
        "costs_paid": trade_costs + swap_costs,
        "spread_and_commission_paid": trade_costs,
        "swap_paid": swap_costs,
        "steps": steps,
        "span_days": span_days,
    }


__all__ = ["MIN_ANNUALIZED_DAYS", "compute_metrics", "drawdown_curve", "max_drawdown"]
