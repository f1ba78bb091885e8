"""Checks and repairs on bars, each failure reported with the file line it came from.

Two things are repaired because they are harmless and common: rows out of order (some
exports are newest-first) and exact duplicate bars (overlapping exports glued together).
Everything else that would make a backtest lie - a price that is not a number, a high
below the low, two different bars for one time, a price that jumps away from both
neighbouring bars and straight back (a lost decimal point, a bad tick) - stops the run
with the line to fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")


class RowLocator:
    """Turns a row position into what the user sees: ``line 58`` of a CSV, ``row 57`` of parquet.

    It follows the rows through sorting, so errors after a repair still point at the file.
    """

    def __init__(self, numbers: np.ndarray, unit: str) -> None:
        self.numbers = numbers
        self.unit = unit

    def __call__(self, row: int) -> str:
        return f"{self.unit} {int(self.numbers[row])}"

    def reordered(self, order: np.ndarray) -> RowLocator:
        return RowLocator(self.numbers[order], self.unit)

    def subset(self, mask: np.ndarray) -> RowLocator:
        return RowLocator(self.numbers[mask], self.unit)


def to_float_column(
    values: pd.Series, path: Path, column: str, rows: RowLocator, allow_empty: bool = False
) -> np.ndarray:
    """Convert one source column to float64, naming the first line that is not a number."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(numbers)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = values.astype("str").str.strip()
        empty = (values.isna() | (text == "")).to_numpy()
        not_number = np.isnan(numbers) & ~empty
        if not_number.any():
            row = int(np.flatnonzero(not_number)[0])
            raise DataError(
                path,
                f"{rows(row)}, column {column!r}: {values.iloc[row]!r} is not a number; "
                "fix or remove the row",
            )
    if empty.any() and not allow_empty:
        row = int(np.flatnonzero(empty)[0])
        raise DataError(
            path,
            f"{rows(row)}, column {column!r}: value is empty (NaN); fill or remove the row "
            f"({int(empty.sum())} such row(s))",
        )
    if np.isinf(numbers).any():
        row = int(np.flatnonzero(np.isinf(numbers))[0])
        raise DataError(path, f"{rows(row)}, column {column!r}: value is infinite; fix the row")
    return numbers


def check_positive(bars: pd.DataFrame, path: Path, rows: RowLocator) -> None:
    """Reject non-positive prices (every later check works on log prices)."""
    prices = bars[list(PRICE_COLUMNS)].to_numpy()
    non_positive = (prices <= 0).any(axis=1)
    if non_positive.any():
        row = int(np.flatnonzero(non_positive)[0])
        column = PRICE_COLUMNS[int(np.flatnonzero(prices[row] <= 0)[0])]
        raise DataError(
            path,
            f"{rows(row)}, column {column!r}: price {prices[row][PRICE_COLUMNS.index(column)]:g} "
            f"is not positive; fix or remove the row ({int(non_positive.sum())} such row(s))",
        )


def check_consistent(bars: pd.DataFrame, path: Path, rows: RowLocator) -> None:
    """Reject bars whose high/low do not contain open and close."""
    prices = bars[list(PRICE_COLUMNS)].to_numpy()
    open_, high, low, close = prices.T
    tolerance = 1e-9 * np.abs(high)
    body_top = np.maximum(open_, close)
    body_bottom = np.minimum(open_, close)
    bad = (high < low - tolerance) | (high < body_top - tolerance) | (low > body_bottom + tolerance)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        o, h, low_, c = prices[row]
        if h < low_:
            what = f"high {h:g} is below low {low_:g}"
        elif h < max(o, c):
            what = f"high {h:g} is below {'open' if o > c else 'close'} {max(o, c):g}"
        else:
            what = f"low {low_:g} is above {'open' if o < c else 'close'} {min(o, c):g}"
        raise DataError(
            path,
            f"{rows(row)}: inconsistent bar, {what}; fix or remove the row "
            f"({int(bad.sum())} inconsistent bar(s) in the file)",
        )



#: A robust sd is this many median absolute deviations (for normal data, MAD x 1.4826 = sd).
MAD_TO_SD = 1.4826
#: A price this far (log) from both neighbouring bars is a lost decimal at any volatility (5x).
IMPOSSIBLE_LOG_JUMP = float(np.log(5.0))


def robust_move_sd(close: np.ndarray) -> float:
    """The series' own scale: MAD x 1.4826 of its non-zero 1-bar log moves (0 where there are too few)."""
    moves = np.diff(np.log(close))
    moves = moves[moves != 0]
    if len(moves) < 10:
        return 0.0
    return float(MAD_TO_SD * np.median(np.abs(moves - np.median(moves))))


def distance_from_neighbours(prices: np.ndarray) -> np.ndarray:
    """Per bar and price column, the log distance to the nearer of the previous and next bars' ranges.

    Zero when the price lies within either neighbour's low-high range. A real move is near one
    neighbour at least (a gap is near the bars after it, a crash's low near the bars around
    it); a typo or a bad tick is far from both, because the bars around it never went there."""
    logs = np.log(prices)
    low, high = logs[:, PRICE_COLUMNS.index("low")], logs[:, PRICE_COLUMNS.index("high")]
    far = np.full((1, logs.shape[1]), np.inf)
    from_previous = np.maximum(0.0, np.maximum(low[:-1, None] - logs[1:], logs[1:] - high[:-1, None]))
    from_next = np.maximum(0.0, np.maximum(low[1:, None] - logs[:-1], logs[:-1] - high[1:, None]))
    return np.minimum(np.vstack([far, from_previous]), np.vstack([from_next, far]))


def check_jumps(bars: pd.DataFrame, path: Path, rows: RowLocator, max_jump_mads: float | None,
                names: dict[str, str] | None = None) -> dict[str, object] | None:
    """Reject a price far from both neighbouring bars (see :func:`distance_from_neighbours`): further
    than ``max_jump_mads`` robust sds of the series' 1-bar moves, or 5x away whatever the scale.

    Bars must be in time order. ``names`` maps open/high/low/close to the file's column names.
    Returns the largest close-to-close move accepted (time, size, in sds), for the report."""
    if len(bars) < 3:
        return None
    prices = bars[list(PRICE_COLUMNS)].to_numpy()
    sd = robust_move_sd(prices[:, PRICE_COLUMNS.index("close")])
    if max_jump_mads is not None:
        distance = distance_from_neighbours(prices)
        limit = min(max_jump_mads * sd, IMPOSSIBLE_LOG_JUMP) if sd > 0 else IMPOSSIBLE_LOG_JUMP
        bad = distance > limit
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            worst = int(np.argmax(np.where(bad[row], distance[row], -1.0)))
            column = PRICE_COLUMNS[worst]
            factor = float(np.exp(distance[row, worst]))
            size = f"{factor:,.0f}x" if factor >= 2 else f"{100 * (factor - 1):.1f}%"
            scale = f"{distance[row, worst] / sd:,.0f} robust sd of its 1-bar moves" if sd > 0 else "no scale"
            flagged = ", ".join(f"{(names or {}).get(c, c)!r} {prices[row, i]:.10g}"
                                for i, c in enumerate(PRICE_COLUMNS) if bad[row, i])
            raise DataError(
                path,
                f"{rows(row)}, column {(names or {}).get(column, column)!r}: {prices[row, worst]:.10g} is {size} away "
                f"from both neighbouring bars ({scale}), an impossible jump (flagged: {flagged}); fix the row, or "
                f"loosen the check with --max_jump_mads (data.max_jump_mads, now {max_jump_mads:g}; null turns it "
                f"off) ({int(bad.any(axis=1).sum())} such bar(s))",
            )
    moves = np.diff(np.log(prices[:, PRICE_COLUMNS.index("close")]))
    at = int(np.argmax(np.abs(moves)))
    return {"time": str(bars.index[at + 1]), "percent": float(100 * np.expm1(moves[at])),
            "robust_sds": float(abs(moves[at]) / sd) if sd else None}


def sort_and_deduplicate(
    bars: pd.DataFrame, path: Path, rows: RowLocator
) -> tuple[pd.DataFrame, RowLocator, list[str]]:
    """Sort by time and drop exact duplicate bars; a time with two different bars is an error.

    Returns the rows' locator in the new order too, so later errors still name file lines."""
    repairs: list[str] = []
    times = bars.index.asi8
    steps = np.diff(times)
    if (steps < 0).any():
        # rows that come after a later bar: what a user would call "out of order"
        out_of_order = int((times[1:] < np.maximum.accumulate(times)[:-1]).sum())
        order = np.argsort(times, kind="stable")
        bars, rows = bars.iloc[order], rows.reordered(order)
        if (steps <= 0).all():
            repairs.append(f"file was newest-first; reversed {len(bars)} rows into time order")
        else:
            repairs.append(f"sorted {out_of_order} row(s) that were out of time order")
        steps = np.diff(bars.index.asi8)
    if (steps == 0).any():
        duplicated = bars.index.duplicated(keep=False)
        dupes = bars[duplicated]
        # a time whose rows disagree in any column (prices are validated, so no NaN here)
        conflicting = dupes.groupby(level=0).nunique().gt(1).any(axis=1)
        if conflicting.any():
            stamp = conflicting.index[conflicting.to_numpy()][0]
            group = rows.subset(duplicated).subset(dupes.index == stamp)
            places = ", ".join(sorted(str(int(n)) for n in group.numbers))
            raise DataError(
                path,
                f"{group.unit}s {places} hold different bars for the same time {stamp}; "
                "keep one of them",
            )
        keep = ~bars.index.duplicated(keep="first")
        repairs.append(f"dropped {int((~keep).sum())} exact duplicate bar(s)")
        bars, rows = bars[keep], rows.subset(keep)
    return bars, rows, repairs
