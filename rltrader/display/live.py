"""What ``rltrader signal`` and ``rltrader paper`` print: ledger rows, the account's standing, skipped bars."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rltrader.data.bar_arrays import bar_time


def ledger_lines(frame: pd.DataFrame) -> list[str]:
    """Ledger rows as the terminal shows them: the fill at the open, the account at the close, the next decision."""
    lines = []
    for row in frame.itertuples(index=False):
        traded = row.fill_price is not None and row.fill_price == row.fill_price  # not None, not NaN
        filled = (f"-> {row.filled:<5} @ {row.fill_price:<10,.2f}" if traded else
                  f"holds {row.filled:<5}{'':<9}" if row.filled else f"{'':<20}")
        decision = (f"next: {row.decision} (p={max(row.p_short, row.p_flat, row.p_long):.2f})" if row.decision
                    else "no decision")
        lines.append(f"  {row.time}  {filled} units {row.units:>9,.4f}  equity {row.equity:,.2f}  "
                     f"buy-and-hold {row.buy_and_hold:,.2f}  {decision}")
    return lines


def paper_standing_line(name: str, summary: dict[str, Any], picture: Any) -> str | None:
    """The account against buy-and-hold after a batch of bars (None before its first fill)."""
    paper, hold = summary.get("paper", {}), summary.get("buy_and_hold", {})
    if not paper:
        return None
    return (f"rltrader paper {name}: {summary['bars']:,} bars since {summary['first_bar']}, equity "
            f"{paper['final_equity']:,.2f} ({100 * paper['total_return']:+.2f}%), buy-and-hold "
            f"{hold['final_equity']:,.2f} ({100 * hold['total_return']:+.2f}%), holding {summary['position']}, "
            f"next: {summary['next_decision'] or 'none'}; {picture}")


def takeover_line(name: str, model: str, switch: dict[str, Any]) -> str:
    return (f"rltrader paper {name}: {model} v{switch['to_version']} takes over from v{switch['from_version']} after "
            f"bar {switch['after_bar']}, position carried ({switch['reason']})")


def skipped_line(command: str, stamp: int, why: str) -> str:
    return f"rltrader {command}: skipped bar {bar_time(stamp)}: {why}"


def no_new_bar_line(name: str, last_time: int | None, data_path: Any) -> str:
    return f"rltrader paper {name}: no new bar after {bar_time(last_time) if last_time else 'none'} in {data_path}"


__all__ = ["ledger_lines", "no_new_bar_line", "paper_standing_line", "skipped_line", "takeover_line"]
