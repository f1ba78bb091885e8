"""Load any supported bar export into one canonical frame.

The canonical frame has a UTC-naive ``DatetimeIndex`` named ``timestamp`` (the broker's
clock as exported; MetaTrader exports server time), float64 ``open, high, low, close``,
and, when the file has them, float64 ``volume`` and ``spread`` in price units. Real
market gaps (weekends, daily breaks) stay gaps: no bar is invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.config import LoadingConfig
from rltrader.data.columns import HEADERLESS_LAYOUTS, ColumnRoles, assign_roles, normalise_name
from rltrader.data.sniff import TextLayout, is_parquet, sniff_text
from rltrader.data.timestamps import ParsedTimes, parse_epoch, parse_text_times
from rltrader.data.validation import (
    PRICE_COLUMNS,
    RowLocator,
    check_consistent,
    check_jumps,
    check_positive,
    sort_and_deduplicate,
    to_float_column,
)
from rltrader.errors import DataError

_EPOCH_MINIMUM = 1e8  # below this a number is a date like 20240102, not Unix time
_TOKENIZE_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class LoadedBars:
    """Canonical bars plus what was detected and repaired on the way, for the report."""

    bars: pd.DataFrame
    source: Path
    source_format: str
    time_description: str
    bar_interval: pd.Timedelta
    spread_description: str | None = None
    repairs: tuple[str, ...] = field(default_factory=tuple)
    largest_move: dict[str, Any] | None = None  # the largest close-to-close move accepted: time, percent, sds

    @property
    def gaps(self) -> pd.Series:
        """Durations of the breaks longer than one bar interval (weekends, maintenance)."""
        steps = pd.Series(np.diff(self.bars.index.asi8), index=self.bars.index[1:])
        return pd.to_timedelta(steps[steps > self.bar_interval.value], unit="ns")


def _read_text(path: Path, layout: TextLayout) -> pd.DataFrame:
    kwargs: dict = dict(
        sep=layout.sep,
        decimal=layout.decimal,
        encoding=layout.encoding,
        skipinitialspace=True,
        engine="c",
    )
    if not layout.has_header:
        names = HEADERLESS_LAYOUTS.get(layout.field_count)
        if names is None:
            raise DataError(
                path,
                f"line 1 has no header and {layout.field_count} columns; add a header row naming "
                "the columns (Date, Open, High, Low, Close, Volume)",
            )
        kwargs.update(header=None, names=list(names))
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.ParserError as error:
        match = _TOKENIZE_ERROR.search(str(error))
        if match:
            expected, line, seen = match.groups()
            raise DataError(
                path, f"line {line} has {seen} fields where the header has {expected}; fix the row"
            ) from None
        raise DataError(path, f"cannot be parsed as CSV ({error}); check --sep") from None
    except UnicodeDecodeError:
        raise DataError(path, "is not text in a known encoding; save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "is empty; export the bars again") from None
    if frame.columns.astype(str).str.contains("<").any():
        frame.columns = [str(column).strip("<>") for column in frame.columns]
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataError(path, f"is not a readable parquet file ({type(error).__name__}); export it again") from None
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names=frame.index.name or "timestamp")
    return frame


def _describe_format(frame: pd.DataFrame, layout: TextLayout | None, epoch: bool) -> str:
    """A name the user recognises for what was read, for the report."""
    if layout is None:
        return "parquet"
    names = {normalise_name(column) for column in frame.columns}
    where = {"\t": "tab", ";": "';'", ",": "','"}[layout.sep]
    details = f"sep={where}, decimal={layout.decimal!r}, {layout.encoding}"
    if not layout.has_header:
        kind = "MT4 history export (no header)" if layout.field_count == 7 else "bars without a header"
    elif {"date", "time", "tickvol", "spread"} <= names:
        kind = "MT5 terminal 'Export bars'"
    elif epoch and {"tickvolume", "spread"} <= names:
        kind = "MetaTrader 5 Python API (copy_rates)"
    elif epoch:
        kind = "CSV with Unix timestamps"
    elif {"datetime", "tickvolume"} <= names:
        kind = "MetaTrader script export"
    else:
        kind = "generic CSV"
    return f"{kind} ({details})"


def _parse_times(frame: pd.DataFrame, roles: ColumnRoles, path: Path, rows: RowLocator,
                 options: LoadingConfig) -> tuple[ParsedTimes, bool]:
    if roles.date and roles.time:
        column = f"{roles.date}+{roles.time}"
        text = frame[roles.date].astype("str").str.strip() + " " + frame[roles.time].astype("str").str.strip()
        return parse_text_times(text, path, column, rows, options.date_format, options.dayfirst), False
    if roles.timestamp is None:
        raise DataError(
            path,
            "has no timestamp column; name it Date, Datetime, Timestamp or Time "
            f"(found columns: {', '.join(map(str, frame.columns))})",
        )
    values = frame[roles.timestamp]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.DatetimeIndex(values)
        if parsed.tz is not None:
            parsed = parsed.tz_convert("UTC").tz_localize(None)
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna())[0])
            raise DataError(path, f"{rows(row)}, column {roles.timestamp!r}: timestamp is missing; "
                                  "fill or remove the row")
        return ParsedTimes(parsed.as_unit("ns"), "native datetime column"), False
    is_number = pd.api.types.is_numeric_dtype(values.dtype)
    if is_number and options.date_format is None and float(values.abs().max()) >= _EPOCH_MINIMUM:
        return parse_epoch(values, path, roles.timestamp, rows), True
    if is_number:
        values = values.astype("Int64").astype("str")
    return parse_text_times(values, path, roles.timestamp, rows, options.date_format, options.dayfirst), False


def infer_point(prices: np.ndarray) -> tuple[float, int]:
    """MetaTrader's point is 10**-digits, where digits is the number of price decimals."""
    sample = prices[: 200_000]
    for digits in range(0, 7):
        scaled = sample * 10.0**digits
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.abs(scaled) + 1e-6):
            return 10.0**-digits, digits
    return 1e-6, 6


def _spread_in_price_units(
    raw: np.ndarray, close: np.ndarray, path: Path, column: str, options: LoadingConfig
) -> tuple[np.ndarray, str]:
    if (raw < 0).any():
        raise DataError(path, f"column {column!r} has negative spreads; fix the column or drop it")
    if not np.all(raw == np.round(raw)):
        return raw, "spread column already in price units (not whole points)"
    if options.point is not None:
        return raw * options.point, f"spread in points x {options.point:g} (data.point)"
    point, digits = infer_point(close)
    return raw * point, f"spread in points x {point:g} (point from {digits}-digit prices; set data.point to override)"


def bar_interval(index: pd.DatetimeIndex, path: Path) -> pd.Timedelta:
    """The bars' interval: the most common step between consecutive times (gaps do not count)."""
    steps = np.diff(index.asi8)
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise DataError(path, "holds a single bar time; at least two bars are needed")
    values, counts = np.unique(steps, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def load_bars(path: str | Path, options: LoadingConfig | None = None) -> LoadedBars:
    """Read ``path`` (any supported CSV export or parquet) into validated canonical bars.

    Raises :class:`DataError` with the file, line and column for anything that cannot be
    trusted; repairs only row order and exact duplicates, and lists what it repaired.
    """
    options = options or LoadingConfig()
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found; check --data_path")
    if path.is_dir():
        raise DataError(path, "is a directory; pass a bar file to --data_path")
    if path.stat().st_size == 0:
        raise DataError(path, "is empty; export the bars again")

    layout: TextLayout | None = None
    if is_parquet(path):
        frame = _read_parquet(path)
        rows = RowLocator(np.arange(1, len(frame) + 1), "row")
    else:
        layout = sniff_text(path, options.sep)
        frame = _read_text(path, layout)
        first_line = 2 if layout.has_header else 1
        rows = RowLocator(np.arange(first_line, len(frame) + first_line), "line")
    if len(frame) == 0:
        raise DataError(path, "has a header but no data rows; export a period that has bars")

    roles = assign_roles(frame)
    if roles.missing_prices:
        raise DataError(
            path,
            f"missing price column(s) {', '.join(roles.missing_prices)}; found columns "
            f"{', '.join(map(str, frame.columns))}; rename them to Open, High, Low, Close",
        )
    times, epoch = _parse_times(frame, roles, path, rows, options)

    columns = {role: to_float_column(frame[source], path, source, rows) for role, source in roles.prices.items()}
    bars = pd.DataFrame({role: columns[role] for role in PRICE_COLUMNS}, index=times.values)
    bars.index.name = "timestamp"
    check_positive(bars, path, rows)
    if roles.volume is not None:
        volume = to_float_column(frame[roles.volume], path, roles.volume, rows)
        if (volume < 0).any():
            row = int(np.flatnonzero(volume < 0)[0])
            raise DataError(path, f"{rows(row)}, column {roles.volume!r}: volume is negative; fix the row")
        bars["volume"] = volume
    spread_description = None
    if roles.spread is not None:
        raw_spread = to_float_column(frame[roles.spread], path, roles.spread, rows)
        bars["spread"], spread_description = _spread_in_price_units(
            raw_spread, columns["close"], path, roles.spread, options
        )
    source_format = _describe_format(frame, layout, epoch)
    del frame

    bars, rows, repairs = sort_and_deduplicate(bars, path, rows)
    # in time order: a price is judged against the bars before and after it; a lost decimal in
    # the close is named as such rather than as "high below close"
    largest_move = check_jumps(bars, path, rows, options.max_jump_mads, roles.prices)
    check_consistent(bars, path, rows)
    return LoadedBars(
        bars=bars,
        source=path,
        source_format=source_format,
        time_description=times.description,
        bar_interval=bar_interval(bars.index, path),
        spread_description=spread_description,
        repairs=tuple(repairs),
        largest_move=largest_move,
    )
