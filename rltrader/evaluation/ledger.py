"""Replay a sequence of actions through the market's execution model, vectorized.

Once the actions are known, nothing is sequential any more: profits are table lookups and
equity is a cumulative sum. ``np.cumsum`` adds left to right, like ``TradingEnv.step``
does, so the replayed equity equals the environment's to the last bit, and every
evaluator (reference, fast, baselines) is scored by this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rltrader.env.market import ACTION_SIGNS, FLAT, MarketData, price_moves


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


def replay(market: MarketData, first_bar: int, actions: np.ndarray, initial_balance: float) -> Ledger:
    """Ledger of ``actions`` decided at bars ``first_bar, first_bar + 1, ...``."""
    actions = np.asarray(actions, dtype=np.int64)
    n = len(actions)
    fill_bars = np.arange(first_bar + 1, first_bar + n + 1)
    held = np.concatenate(([FLAT], actions[:-1])).astype(np.int64)
    pnl = market.step_pnl[fill_bars, held * 3 + actions]
    equity = np.cumsum(np.concatenate(([initial_balance], pnl)))
    size = market.position_size
    held_units, target_units = ACTION_SIGNS[held] * size, ACTION_SIGNS[actions] * size
    trade_costs = np.abs(target_units - held_units) * market.trade_cost[fill_bars]
    nights = market.rollover_nights[fill_bars]
    swap = np.where(held_units > 0, held_units * market.swap_long, -held_units * market.swap_short) * nights
    bars = np.concatenate(([first_bar], fill_bars))
    return Ledger(
        timestamps=market.timestamps[bars],
        close=market.close[bars],
        equity=equity,
        positions=np.concatenate(([0.0], target_units)),
        actions=actions,
        step_pnl=pnl,
        trade_costs=trade_costs,
        swap_costs=swap,
    )


def trade_pnls(market: MarketData, first_bar: int, ledger: Ledger) -> tuple[np.ndarray, np.ndarray]:
    """Profit and length in bars of each trade (a run of one non-flat position).

    A step's profit is split between the trade held before the fill (the gap from the
    previous close, the swap, and the cost of closing) and the trade held after it (the
    move from open to close and the cost of opening). A reversal closes one trade and
    opens the next. The trade still open at the end counts, marked to the last close.
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
    gap, body = price_moves(market.open, market.close)
    gap, body = gap[fill_bars], body[fill_bars]
    cost = market.trade_cost[fill_bars]
    changed = target != held
    held_leg = held * gap - np.where(changed, np.abs(held), 0.0) * cost - ledger.swap_costs
    target_leg = target * body - np.where(changed, np.abs(target), 0.0) * cost
    n_trades = int(trade_id[-1])
    pnl = np.zeros(n_trades + 1)
    np.add.at(pnl, held_id[held != 0], held_leg[held != 0])
    np.add.at(pnl, trade_id[target != 0], target_leg[target != 0])
    lengths = np.bincount(trade_id[target != 0], minlength=n_trades + 1)
    return pnl[1:], lengths[1:]


__all__ = ["Ledger", "replay", "trade_pnls"]
