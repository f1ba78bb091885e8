"""Causal technical indicators, vectorized over the whole series.

Every function here is causal: the value at bar t is computed from bars <= t only
(rolling windows end at t, exponential averages run forward with ``adjust=False``), so
they can be computed once for the whole file without leaking the future into training.
Rolling windows are summed window by window (:mod:`rltrader.features.rolling`): a bar's
value depends on its window alone, as it does in the live stream.
Price-scale quantities are divided by the close so that features mean the same thing at
1,200 and at 2,400 dollars an ounce.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rltrader.features.rolling import rolling_mean_std


def log_returns(close: pd.Series, horizon: int) -> pd.Series:
    return np.log(close).diff(horizon)


def _rolling(values: pd.Series, window: int) -> tuple[pd.Series, pd.Series]:
    mean, std = rolling_mean_std(values.to_numpy(dtype=np.float64), window)
    return pd.Series(mean, index=values.index), pd.Series(std, index=values.index)


def realized_volatility(close: pd.Series, window: int) -> pd.Series:
    return _rolling(np.log(close).diff(), window)[1]


def _wilder(series: pd.Series, period: int) -> pd.Series:
    return series.ewm(alpha=1.0 / period, adjust=False).mean()


def average_true_range(high: pd.Series, low: pd.Series, close: pd.Series, period: int) -> pd.Series:
    """Wilder's ATR relative to the close."""
    previous_close = close.shift(1)
    true_range = pd.concat(
        [high - low, (high - previous_close).abs(), (low - previous_close).abs()], axis=1
    ).max(axis=1)
    return _wilder(true_range, period) / close


def relative_strength_index(close: pd.Series, period: int) -> pd.Series:
    """Wilder's RSI rescaled from 0..100 to -1..1 (0 is neutral)."""
    change = close.diff()
    gain = _wilder(change.clip(lower=0), period)
    loss = _wilder(-change.clip(upper=0), period)
    total = gain + loss
    rsi = (gain / total.where(total > 0)).fillna(0.5)
    return (rsi - 0.5) * 2.0


def macd(close: pd.Series, fast: int, slow: int, signal: int) -> pd.DataFrame:
    """MACD line, signal line and histogram, relative to the close."""
    line = close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()
    signal_line = line.ewm(span=signal, adjust=False).mean()
    return pd.DataFrame(
        {"macd": line / close, "macd_signal": signal_line / close, "macd_hist": (line - signal_line) / close}
    )


def bollinger_position(close: pd.Series, window: int, num_std: float) -> pd.Series:
    """Where the close sits between the bands: 0 at the mean, +-1 at the bands."""
    mean, std = _rolling(close, window)
    width = num_std * std
    position = (close - mean) / width.where(width > 0)
    return position.where(width.isna() | (width > 0), 0.0)


def rolling_zscore(values: pd.Series, window: int) -> pd.Series:
    mean, std = _rolling(values, window)
    zscore = (values - mean) / std.where(std > 0)
    return zscore.where(std.isna() | (std > 0), 0.0)


def cyclical(phase: np.ndarray, prefix: str, harmonics: int = 1) -> pd.DataFrame:
    """Encode a phase in [0, 1) as a point on the circle, so 23:45 sits next to 00:00; with ``harmonics`` > 1
    also the points of ``k`` times the phase (columns ``prefix_k_sin``, ``prefix_k_cos``): any pattern that
    repeats k times a cycle is then a linear function of the columns, as it is not of the first pair."""
    columns = {}
    for k in range(1, harmonics + 1):
        angle = 2.0 * np.pi * phase if k == 1 else 2.0 * np.pi * (k * phase)
        name = prefix if k == 1 else f"{prefix}_{k}"
        columns[f"{name}_sin"], columns[f"{name}_cos"] = np.sin(angle), np.cos(angle)
    return pd.DataFrame(columns)
