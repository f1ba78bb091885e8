"""Which spread the fills pay, decided once, before any training.

Fills pay half the spread at the next bar's open. The spread comes from the file's per-bar
``spread`` column or, with ``costs.spread_points`` (``--spread_points``), is a fixed number
of points. A file with neither would make every trade free, which no backtest may assume:
that is refused at preprocessing, naming the file and the flag, instead of when the first
iteration builds its market minutes later.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rltrader.config import Config
from rltrader.errors import DataError


def require_spread(data_path: str | Path, columns: Iterable[str], config: Config) -> str:
    """Say which spread will be charged; a one-line :class:`DataError` when the file has none to charge."""
    points = config.costs.spread_points
    if points is not None:
        point = f"{config.data.point:g}" if config.data.point is not None else "the point from price digits"
        return f"fixed {points:g} points x {point} (costs.spread_points), half at each fill"
    if "spread" not in set(columns):
        raise DataError(data_path, "the file has no spread column, so every trade would be free; pass "
                                   "--spread_points N (costs.spread_points), e.g. 20 for XAUUSD with point 0.01")
    return "the file's per-bar spread column, half at each fill"


__all__ = ["require_spread"]
