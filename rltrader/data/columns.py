"""Map the column names of any bar export onto the canonical roles.

Names are compared after lower-casing and dropping everything but letters and digits,
so ``<TICKVOL>``, ``tick_volume``, ``Tick Volume`` and ``TickVolume`` are one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

PRICE_ROLES = ("open", "high", "low", "close")
_PRICE_NAMES = {
    "open": ("open", "o", "openprice", "bidopen"),
    "high": ("high", "h", "highprice", "bidhigh"),
    "low": ("low", "l", "lowprice", "bidlow"),
    "close": ("close", "c", "closeprice", "bidclose", "last"),
}
# Tick volume first: for CFDs and FX the "real" volume column is usually all zeros.
VOLUME_NAMES = ("tickvolume", "tickvol", "ticks", "volume", "vol", "realvolume")
SPREAD_NAMES = ("spread",)
DATETIME_NAMES = (
    "datetime",
    "timestamp",
    "date",
    "time",
    "gmttime",
    "localtime",
    "datetimeutc",
    "opentime",
    "bartime",
)
DATE_NAMES = ("date", "day")
TIME_NAMES = ("time", "hour")

# Column layouts of files without a header row, by field count (MT4 history export first).
HEADERLESS_LAYOUTS = {
    7: ("date", "time", "open", "high", "low", "close", "volume"),
    6: ("datetime", "open", "high", "low", "close", "volume"),
    5: ("datetime", "open", "high", "low", "close"),
}


def normalise_name(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


@dataclass(frozen=True)
class ColumnRoles:
    """Which source column plays which role; ``date``/``time`` are set when split in two."""

    prices: dict[str, str]
    timestamp: str | None
    date: str | None
    time: str | None
    volume: str | None
    spread: str | None
    missing_prices: tuple[str, ...]


def _find(normalised: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in normalised:
            return normalised[name]
    return None


def _looks_like_clock(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(20)
    return len(sample) > 0 and bool(sample.str.match(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$").all())


def assign_roles(frame: pd.DataFrame) -> ColumnRoles:
    """Decide the role of each column of ``frame`` from its header."""
    normalised: dict[str, str] = {}
    for column in frame.columns:
        normalised.setdefault(normalise_name(column), column)

    prices = {role: col for role in PRICE_ROLES if (col := _find(normalised, _PRICE_NAMES[role]))}
    missing = tuple(role for role in PRICE_ROLES if role not in prices)

    date_col = _find(normalised, DATE_NAMES)
    time_col = _find(normalised, TIME_NAMES)
    timestamp_col: str | None = None
    if date_col and time_col and _looks_like_clock(frame[time_col]):
        timestamp_col = None
    else:
        date_col = time_col = None
        timestamp_col = _find(normalised, DATETIME_NAMES)

    volume = None
    for name in VOLUME_NAMES:
        column = normalised.get(name)
        if column is None:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.fillna(0).abs().sum() > 0:
            volume = column
            break
    return ColumnRoles(
        prices=prices,
        timestamp=timestamp_col,
        date=date_col,
        time=time_col,
        volume=volume,
        spread=_find(normalised, SPREAD_NAMES),
        missing_prices=missing,
    )
