"""Replay a sequence of actions through the market's execution model, compiled.

Once the actions are known, the only sequential state left is the account itself: how
many units the position holds (equity-fraction sizing sizes each new position from equity
at the fill) and the equity. :func:`account_profits` walks them with the environments' own
step (:func:`rltrader.engine.kernels.accounts.fill`), adding left to right as ``TradingEnv.step``
does, so the replayed equity equals the environment's to the last bit; every evaluator
(reference, fast, baselines, random policies) is scored by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from rltrader.engine.kernels.accounts import fill
from rltrader.env.market import (
    BODY,
    CLOSE_COLUMN,
    CLOSE_RATE,
    COST,
    FLAT,
    GAP,
    OPEN_COLUMN,
    SWAP_LONG,
    SWAP_SHORT,
    MarketData,
)


@dataclass(frozen=True)
class Ledger:
    """One account's path through a split: ``n`` steps, ``n + 1`` marks (the first is the start)."""

    timestamps: np.ndarray  # (n+1,) datetime64: the decision bar, then each filled bar
    close: np.ndarray  # (n+1,)
    equity: np.ndarray  # (n+1,), marked to each close
    positions: np.ndarray  # (n+1,) units held after the fill (0 at the start)
    actions: np.ndarray  # (n,) action codes
    step_pnl: np.ndarray  # (n,)
    trade_costs: np.ndarray  # (n,) spread + commission paid at each fill
    swap_costs: np.ndarray  # (n,)

    @property
    def steps(self) -> int:
        return len(self.actions)


@njit(cache=True, nogil=True)
def account_profits(actions: np.ndarray, first_bar: int, table: np.ndarray, fraction_sizing: bool, size: float,
                    initial_balance: float, units: np.ndarray) -> np.ndarray:
    """Step profits ``(P, n)`` of ``P`` action sequences ``(P, n)`` decided at bars ``first_bar,
    first_bar + 1, ...``, each from a flat account worth ``initial_balance``; the units held
    after each fill go to ``units`` ``(P, n)`` when it has rows (the random policies skip them).

    Equity is the running sum of the profits from ``initial_balance``, left to right."""
    policies, n = actions.shape
    profits = np.empty((policies, n))
    keep_units = units.shape[0] > 0
    for p in range(policies):
        held, held_units, entry, value = FLAT, 0.0, 0.0, initial_balance
        for i in range(n):
            action, t = actions[p, i], first_bar + 1 + i
            held_units, profit = fill(table, t, held, action, held_units, entry, value, fraction_sizing, size)
            value = value + profit
            if action != held:
                entry = table[t, OPEN_COLUMN]
            held = action
            profits[p, i] = profit
            if keep_units:
                units[p, i] = held_units
    return profits


def replay(market: MarketData, first_bar: int, actions: np.ndarray, initial_balance: float) -> Ledger:
    """Ledger of ``actions`` decided at bars ``first_bar, first_bar + 1, ...``."""
    actions = np.asarray(actions, dtype=np.int64)
    n = len(actions)
    fill_bars = np.arange(first_bar + 1, first_bar + n + 1)
    units = np.zeros((1, n))
    profits = account_profits(actions[None, :], first_bar, market.step_table, market.fraction_sizing, market.size,
                              initial_balance, units)[0]
    positions = np.concatenate(([0.0], units[0]))
    held_units, target_units = positions[:-1], positions[1:]
    rows = market.step_table[fill_bars]
    trade_costs = np.abs(target_units - held_units) * rows[:, COST]
    swap = np.where(held_units > 0, held_units * rows[:, SWAP_LONG], -held_units * rows[:, SWAP_SHORT])
    bars = np.concatenate(([first_bar], fill_bars))
    return Ledger(
        timestamps=market.timestamps[bars],
        close=market.close[bars],
        equity=np.cumsum(np.concatenate(([initial_balance], profits))),  # adds left to right, as the env does
        positions=positions,
        actions=actions,
        step_pnl=profits,
        trade_costs=trade_costs,
        swap_costs=swap,
    )


def trade_pnls(market: MarketData, first_bar: int, ledger: Ledger) -> tuple[np.ndarray, np.ndarray]:
    """Profit and length in bars of each trade (a run of one non-flat position).

    A step's profit is split between the trade held before the fill (the gap from the
    previous close, the swap, the cost of closing and the revaluation of its floating
    profit at the new rate) and the trade held after it (the move from open to close and
    the cost of opening). A reversal closes one trade and opens the next. The trade still
    open at the end counts, marked to the last close.
    """
    n = ledger.steps
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    fill_bars = np.arange(first_bar + 1, first_bar + n + 1)
    held = ledger.positions[:-1]
    target = ledger.positions[1:]
    opened = (target != held) & (target != 0)
    trade_id = np.cumsum(opened)  # id of the trade held after each fill; 0 before the first
    held_id = np.concatenate(([0], trade_id[:-1]))
    rows = market.step_table[fill_bars]
    gap, body, cost = rows[:, GAP], rows[:, BODY], rows[:, COST]
    changed = target != held
    last_fill = np.maximum.accumulate(np.where(changed, np.arange(n), -1))  # the fill of the position held after
    entry_after = np.where(last_fill >= 0, rows[np.maximum(last_fill, 0), OPEN_COLUMN], 0.0)
    entry = np.concatenate(([0.0], entry_after[:-1]))
    previous = market.step_table[fill_bars - 1]
    revaluation = held * (previous[:, CLOSE_COLUMN] - entry) * (rows[:, CLOSE_RATE] - previous[:, CLOSE_RATE])
    held_leg = held * gap - np.where(changed, np.abs(held), 0.0) * cost - ledger.swap_costs + revaluation
    target_leg = target * body - np.where(changed, np.abs(target), 0.0) * cost
    n_trades = int(trade_id[-1])
    pnl = np.zeros(n_trades + 1)
    np.add.at(pnl, held_id[held != 0], held_leg[held != 0])
    np.add.at(pnl, trade_id[target != 0], target_leg[target != 0])
    lengths = np.bincount(trade_id[target != 0], minlength=n_trades + 1)
    return pnl[1:], lengths[1:]


__all__ = ["Ledger", "account_profits", "replay", "trade_pnls"]
