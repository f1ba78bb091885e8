"""The vectorized step, compiled with numba: one call moves every account one bar.

Why compiled: a numpy step of N accounts is some 25 array calls, each paying its call
overhead whatever N is, while the work itself (N table lookups and N window copies) is a
small fraction of that. One loop over the accounts in machine code does the work at its
own cost (the figures are in ``bench/README.md``, ``bench/env.py``).

The arithmetic is :meth:`rltrader.env.trading_env.TradingEnv.step`'s, operation for
operation and in the same order (IEEE doubles, no fast-math, ``math.log`` is libm's in
both), so the vectorized accounts stay bit-identical to single environments
(``tests/test_env.py`` checks it). Copy loops index with unsigned integers: numba then
drops the negative-index wraparound test and the loop compiles to vector moves.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

#: Columns of the market's step table (``rltrader.env.market.MarketData.step_table``), per unit and in
#: the account currency: the gap earned by a unit held over the fill bar's open, the move after the
#: fill, the cost of one unit traded, the swap of one unit held long and short, the account value of
#: one unit at the fill (for equity-fraction sizing), then the raw open and close and the close's
#: conversion rate. The kernels read it, so its layout is defined here and the market imports it.
GAP, BODY, COST, SWAP_LONG, SWAP_SHORT, NOTIONAL, OPEN_COLUMN, CLOSE_COLUMN, CLOSE_RATE = range(9)
TABLE_COLUMNS = 9

#: Columns of the integer and float account state arrays handed to :func:`step_accounts`;
#: TERMINATED is an output (1 when the last step hit the drawdown limit).
BAR, END, HELD, TERMINATED = 0, 1, 2, 3
EQUITY, PEAK, ENTRY, UNITS = 0, 1, 2, 3
#: Layout of the float64 ``params`` array: FRACTION_SIZING is 1.0 when SIZE is a share of equity. The last three
#: are outputs the step adds to: the sum, the sum of squares and the count of the scaled returns before the risk
#: penalty, from which the training sets the next risk aversion (:mod:`rltrader.training.risk_aversion`).
KEEP, SCALE, LOG_REWARD, FRACTION_SIZING, SIZE, RISK_AVERSION = 0, 1, 2, 3, 4, 5
RETURN_SUM, RETURN_SQUARES, RETURN_COUNT = 6, 7, 8
RETURN_MOMENTS = (RETURN_SUM, RETURN_SQUARES, RETURN_COUNT)
N_PARAMS = 9
_MIN_EQUITY_RATIO = 1e-12  # rltrader.env.trading_env.MIN_EQUITY_RATIO; asserted equal in tests


@njit(cache=True, nogil=True, inline="always")
def fill(table: np.ndarray, t: int, held: int, action: int, units: float, entry: float, equity: float,
         fraction_sizing: bool, size: float) -> tuple[float, float]:
    """Units held after the step filling at bar ``t`` and the step's profit.

    ``held``/``action`` are action codes (0 short, 1 flat, 2 long), ``units`` and ``entry``
    the units held before the fill and their fill price, ``equity`` the account's value at
    the decision bar's close. A new position is sized at the fill; an unchanged one keeps
    its units. The arithmetic and its order are :func:`rltrader.env.market.step_profit`'s
    (and ``TradingEnv.step``'s).
    """
    if action == held:
        target = units
    elif fraction_sizing:  # a bankrupt account opens nothing
        target = float(action - 1) * (size * (equity if equity > 0.0 else 0.0) / table[t, NOTIONAL])
    else:
        target = float(action - 1) * size
    swap = units * table[t, SWAP_LONG] if units > 0 else -units * table[t, SWAP_SHORT]
    revaluation = units * (table[t - 1, CLOSE_COLUMN] - entry) * (table[t, CLOSE_RATE] - table[t - 1, CLOSE_RATE])
    profit = units * table[t, GAP] + target * table[t, BODY] - abs(target - units) * table[t, COST] - swap + revaluation
    return target, profit


@njit(cache=True, nogil=True, inline="always")
def unrealized_percent(table: np.ndarray, t: int, units: float, entry: float, equity: float) -> float:
    """The open position's profit at bar ``t``'s close, in percent of equity (the observation's last value)."""
    unrealized = 100.0 * units * (table[t, CLOSE_COLUMN] - entry) * table[t, CLOSE_RATE]
    return unrealized / equity if equity != 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def step_accounts(
    actions: np.ndarray,  # int64 (N,): 0 short, 1 flat, 2 long
    ints: np.ndarray,  # int64 (N, 4): bar, truncation bar, held action, terminated
    floats: np.ndarray,  # float64 (N, 4): equity, peak equity, entry price, units held
    table: np.ndarray,  # float64 (T, 9): MarketData.step_table
    features: np.ndarray,  # float32 (T, F), C-contiguous
    params: np.ndarray,  # float64 (N_PARAMS,): the layout above; the return moments are added to
    obs: np.ndarray,  # float32 (N, window * F + 2), written
    rewards: np.ndarray,  # float32 (N,), written
    dones: np.ndarray,  # bool (N,), written
) -> int:
    """Step every account; returns how many episodes ended, or ``-1 - i`` if action ``i`` is invalid.

    Actions are checked before any state changes, so a bad batch leaves the accounts as
    they were. The caller resets every account whose episode ended before stepping
    again: nothing here stops a bar index from running past the data. Arguments are few
    and packed because passing each one costs a noticeable share of so short a step.
    """
    n = actions.shape[0]
    for i in range(n):
        if actions[i] < 0 or actions[i] > 2:
            return -1 - i
    keep, scale, log_reward = params[KEEP], params[SCALE], params[LOG_REWARD] != 0.0
    fraction_sizing, size, risk_aversion = params[FRACTION_SIZING] != 0.0, params[SIZE], params[RISK_AVERSION]
    width = uint64(obs.shape[1])
    window_values = width - uint64(2)
    n_features = uint64(features.shape[1])
    flat_features = features.reshape(-1)
    flat_obs = obs.reshape(-1)
    ended = 0
    return_sum = return_squares = 0.0
    for i in range(n):
        action = actions[i]
        held = ints[i, HELD]
        t = ints[i, BAR] + 1
        equity_before = floats[i, EQUITY]
        units, profit = fill(table, t, held, action, floats[i, UNITS], floats[i, ENTRY], equity_before,
                             fraction_sizing, size)
        equity = equity_before + profit
        if log_reward:
            ratio = equity / equity_before
            reward = math.log(ratio if ratio > _MIN_EQUITY_RATIO else _MIN_EQUITY_RATIO) * scale
        else:
            reward = (equity - equity_before) / equity_before * scale
        rewards[i] = reward - risk_aversion * reward * reward
        return_sum += reward
        return_squares += reward * reward
        if equity > floats[i, PEAK]:
            floats[i, PEAK] = equity
        if action != held:
            floats[i, ENTRY] = table[t, OPEN_COLUMN]
        ints[i, BAR], ints[i, HELD], floats[i, EQUITY], floats[i, UNITS] = t, action, equity, units

        source = uint64(t + 1) * n_features - window_values
        row = uint64(i) * width
        for j in range(window_values):
            flat_obs[row + j] = flat_features[source + j]
        flat_obs[row + window_values] = float(action - 1)
        flat_obs[row + window_values + uint64(1)] = unrealized_percent(table, t, units, floats[i, ENTRY], equity)

        terminated = equity <= floats[i, PEAK] * keep
        ints[i, TERMINATED] = terminated
        dones[i] = terminated or t >= ints[i, END]
        ended += dones[i]
    params[RETURN_SUM] += return_sum
    params[RETURN_SQUARES] += return_squares
    params[RETURN_COUNT] += n
    return ended


__all__ = [
    "BAR", "END", "ENTRY", "EQUITY", "FRACTION_SIZING", "HELD", "KEEP", "LOG_REWARD", "N_PARAMS", "PEAK",
    "RETURN_COUNT", "RETURN_MOMENTS", "RETURN_SQUARES", "RETURN_SUM", "RISK_AVERSION", "SCALE",
    "SIZE", "TERMINATED", "UNITS", "fill", "step_accounts", "unrealized_percent",
]
