"""Parse bar timestamps exactly, including the ambiguous day/month order.

``pd.to_datetime(dayfirst=True)`` treats day-first as a hint and silently falls back to
month-first where that parses, so a file of ``01.02.2017``-style dates can come out
half in one order and half in the other. Instead we derive explicit strftime formats
from the text, parse the whole column with each candidate, and keep the candidate whose
times run in one direction. When both orders give a consistent series (for instance only
days 1 to 12 of each month) the file is reported as ambiguous rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.data.validation import RowLocator
from rltrader.errors import DataError

_DATE_PATTERNS = (
    # (regex on the date part, formats it may be)
    (re.compile(r"^\d{4}(?P<s>[-./])\d{1,2}(?P=s)\d{1,2}$"), ("%Y{s}%m{s}%d",)),
    (re.compile(r"^\d{1,2}(?P<s>[-./])\d{1,2}(?P=s)\d{4}$"), ("%d{s}%m{s}%Y", "%m{s}%d{s}%Y")),
    (re.compile(r"^\d{8}$"), ("%Y%m%d",)),
)
_CLOCK_FORMATS = {
    r"\d{1,2}:\d{2}": "%H:%M",
    r"\d{1,2}:\d{2}:\d{2}": "%H:%M:%S",
    r"\d{1,2}:\d{2}:\d{2}\.\d+": "%H:%M:%S.%f",
}
_EPOCH_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"), (float("inf"), "ns"))


@dataclass(frozen=True)
class ParsedTimes:
    """Timestamps as UTC-naive datetime64[ns] plus how they were read."""

    values: pd.DatetimeIndex
    description: str


def _candidate_formats(sample: str) -> list[str]:
    sample = sample.strip()
    date_part, sep, clock_part = sample.partition("T") if "T" in sample else sample.partition(" ")
    joiner = "T" if "T" in sample else " "
    date_formats: tuple[str, ...] = ()
    for pattern, formats in _DATE_PATTERNS:
        match = pattern.match(date_part)
        if match:
            separator = match.groupdict().get("s", "")
            date_formats = tuple(fmt.format(s=separator) for fmt in formats)
            break
    if not date_formats:
        return []
    if not sep:
        return list(date_formats)
    clock_part = clock_part.strip()
    for pattern, clock_format in _CLOCK_FORMATS.items():
        if re.fullmatch(pattern, clock_part):
            return [f"{date_format}{joiner}{clock_format}" for date_format in date_formats]
    return []


def _first_bad_row(text: pd.Series, parsed: pd.Series) -> int:
    bad = parsed.isna().to_numpy() & text.notna().to_numpy()
    return int(np.flatnonzero(bad)[0]) if bad.any() else int(np.flatnonzero(parsed.isna())[0])


def _order_violations(values: pd.Series) -> int:
    """Steps against the majority direction: 0 for a sorted file, newest-first files too."""
    steps = np.diff(values.to_numpy().astype("datetime64[ns]").astype(np.int64))
    return int(min((steps > 0).sum(), (steps < 0).sum()))


def _to_naive_utc(parsed: pd.Series) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns")


def parse_epoch(values: pd.Series, path: Path, column: str, rows: RowLocator) -> ParsedTimes:
    """Unix timestamps; the unit (s, ms, us, ns) follows from their magnitude."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(np.flatnonzero(numbers.isna())[0])
        raise DataError(
            path,
            f"{rows(row)}, column {column!r}: timestamp {values.iloc[row]!r} is not "
            "a number like the rest of the column; fix or remove the row",
        )
    magnitude = float(numbers.abs().max())
    unit = next(unit for limit, unit in _EPOCH_UNITS if magnitude < limit)
    parsed = pd.to_datetime(numbers.astype("int64"), unit=unit)
    years = parsed.dt.year
    if years.min() < 1971 or years.max() > 2100:
        raise DataError(
            path,
            f"column {column!r}: numbers read as Unix time ({unit}) give years "
            f"{years.min()}..{years.max()}; pass --date_format if this is not Unix time",
        )
    return ParsedTimes(_to_naive_utc(parsed), f"Unix time in {unit}")


def parse_text_times(
    text: pd.Series,
    path: Path,
    column: str,
    rows: RowLocator,
    date_format: str | None = None,
    dayfirst: bool | None = None,
) -> ParsedTimes:
    """Parse timestamp strings with an explicit format; see the module docstring for the order."""
    text = text.astype("str").str.strip()
    non_empty = text[text != ""]
    if len(non_empty) < len(text):
        row = int(np.flatnonzero((text == "").to_numpy())[0])
        raise DataError(
            path, f"{rows(row)}, column {column!r}: timestamp is empty; fill or remove the row"
        )
    if date_format:
        formats = [date_format]
    else:
        formats = _candidate_formats(str(text.iloc[0]))
        if dayfirst is not None and len(formats) == 2:
            formats = [formats[0] if dayfirst else formats[1]]

    parsed_by_format: dict[str, pd.Series] = {}
    failures: dict[str, int] = {}
    for fmt in formats:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if parsed.isna().any():
            failures[fmt] = _first_bad_row(text, parsed)
        else:
            parsed_by_format[fmt] = parsed

    if not formats:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        if not parsed.isna().any():
            return ParsedTimes(_to_naive_utc(parsed), "ISO 8601 timestamps")
        row = _first_bad_row(text, parsed)
        raise DataError(
            path,
            f"{rows(row)}, column {column!r}: cannot read timestamp "
            f"{text.iloc[row]!r}; pass its format with --date_format (e.g. '%d.%m.%Y %H:%M')",
        )
    if not parsed_by_format:
        fmt, row = max(failures.items(), key=lambda item: item[1])
        hint = "check --date_format" if date_format else "pass its format with --date_format"
        raise DataError(
            path,
            f"{rows(row)}, column {column!r}: timestamp {text.iloc[row]!r} does not "
            f"match {fmt!r} like the rows before it; {hint}",
        )
    if len(parsed_by_format) == 1:
        fmt, parsed = next(iter(parsed_by_format.items()))
        return ParsedTimes(_to_naive_utc(parsed), f"format {fmt!r}")

    (fmt_a, parsed_a), (fmt_b, parsed_b) = parsed_by_format.items()
    if parsed_a.equals(parsed_b):
        return ParsedTimes(_to_naive_utc(parsed_a), f"format {fmt_a!r}")
    violations = {fmt_a: _order_violations(parsed_a), fmt_b: _order_violations(parsed_b)}
    fewest, most = sorted(violations.values())
    # The wrong order breaks time at nearly every change of day; the right one at most at a
    # few unsorted rows. Anything less clear-cut is reported, never guessed.
    if fewest != most and (fewest == 0 or most >= 10 * fewest):
        fmt = min(violations, key=violations.__getitem__)
        order = "day-first" if fmt.index("%d") < fmt.index("%m") else "month-first"
        return ParsedTimes(
            _to_naive_utc(parsed_by_format[fmt]),
            f"format {fmt!r} ({order}: the only order in which time runs one way)",
        )
    raise DataError(
        path,
        f"column {column!r}: dates like {text.iloc[0]!r} read as day-first and as month-first "
        "both give a consistent series; pass --dayfirst or --no-dayfirst (or --date_format)",
    )
