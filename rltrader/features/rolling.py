"""Rolling mean and standard deviation, each window summed on its own (compiled).

Why not pandas' ``rolling().std()``: it keeps running sums over the whole series, adding the new
value and removing the old, so a bar's value carries rounding from every bar before it: on ten
years of gold closes the Bollinger position drifted by 3e-9 from its exact value, and the same bar
got another value in a shorter file. Summing each window afresh makes a bar's feature a function of
its window alone, which is what lets the live stream (:mod:`rltrader.live.features`), holding only
the last window, compute the very same bits: both call :func:`mean_std` on the window's values,
oldest first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (``ddof=0``) of ``values``, two passes, in order."""
    total = 0.0
    for value in values:
        total += value
    mean = total / values.shape[0]
    squares = 0.0
    for value in values:
        deviation = value - mean
        squares += deviation * deviation
    return mean, math.sqrt(squares / values.shape[0])


@njit(cache=True, nogil=True)
def _rolling(values: np.ndarray, window: int, mean_out: np.ndarray, std_out: np.ndarray) -> None:
    for t in range(values.shape[0]):
        if t < window - 1:
            mean_out[t] = np.nan
            std_out[t] = np.nan
        else:
            mean_out[t], std_out[t] = mean_std(values[t - window + 1 : t + 1])


def rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of every ``window`` values ending at each position (NaN before the
    first full window; a window holding a NaN is NaN), as ``rolling(window)`` would give them."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    mean, std = np.empty(len(values)), np.empty(len(values))
    _rolling(values, int(window), mean, std)
    return mean, std


__all__ = ["mean_std", "rolling_mean_std"]
