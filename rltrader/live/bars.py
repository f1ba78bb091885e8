"""Read a bar file for a bundle: the same parsing as training, and the checks that keep a model on its market.

A terminal export is read whole each time it changes (a 10,000-bar file takes milliseconds), through
:func:`rltrader.data.load_bars` with the bundle's own loading options, so separators, date formats
and spread points mean what they meant in training. Refused, each in one line naming both sides:
bars of another symbol (by the file name, as training reads it) or another bar interval than the
bundle's, a file missing a column the features need, and less history than the warm-up.

The batch check for impossible prices also looks at the bar after, which a live file does not have
yet; it is turned off here, and the stream judges each new bar against the last accepted one
(:data:`rltrader.live.stream.IMPOSSIBLE_LOG_JUMP`), skipping a bad bar and keeping its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.bundle import BundleDescription
from rltrader.config import InstrumentConfig, LoadingConfig
from rltrader.data import load_bars
from rltrader.data.bar_arrays import BarArrays, bar_arrays
from rltrader.env.instrument import parse_pair
from rltrader.errors import DataError, UserInputError


@dataclass(frozen=True)
class BarFile:
    """A bar file's bars as the stream reads them, with what was checked about them."""

    path: Path
    bars: BarArrays
    symbol_checked: bool  # False when the file name names no symbol (nothing to compare)

    def after(self, stamp: int | None) -> BarArrays:
        """The bars later than ``stamp`` (ns; None: all)."""
        if stamp is None:
            return self.bars
        return self.bars.rows(int(np.searchsorted(self.bars.timestamps, stamp, side="right")), len(self.bars))


def parse_bar_time(text: str | None, flag: str = "--start") -> int | None:
    """A bar time given on the command line (``2025-01-02 00:00``) as nanoseconds since 1970; a one-line
    error naming ``flag`` otherwise."""
    if text is None:
        return None
    try:
        return int(pd.Timestamp(text).value)
    except ValueError:
        raise UserInputError(f"{flag} {text!r} is not a time; write it as 2025-01-02 00:00") from None


def interval_name(seconds: float) -> str:
    """``H1``, ``M15``, ``D1`` as MetaTrader names intervals; seconds otherwise."""
    for unit, size in (("D", 86_400), ("H", 3_600), ("M", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{unit}{int(seconds // size)}"
    return f"{seconds:g} s"


def read_bar_file(path: str | Path, about: BundleDescription, need_history: bool = True) -> BarFile:
    """Read and check ``path`` for the bundle ``about``; a one-line :class:`DataError` for anything wrong.

    :param path: the bar file (CSV/TSV export or parquet)
    :param about: the bundle's description
    :param need_history: refuse a file shorter than the warm-up plus one bar (a first decision needs it)
    """
    path = Path(path)
    options = LoadingConfig.model_validate({**(about.loading or {}), "max_jump_mads": None})
    loaded = load_bars(path, options)
    bundle_symbol = about.symbol
    pair = parse_pair(path.name)
    symbol_checked = pair is not None and bundle_symbol is not None and not _configured_symbol(about)
    if symbol_checked and f"{pair[0]}{pair[1]}" != bundle_symbol:  # type: ignore[index]
        raise DataError(path, f"holds {pair[0]}{pair[1]} bars (by its name) but the bundle trades "  # type: ignore[index]
                              f"{bundle_symbol}; pass {bundle_symbol} bars")
    seconds = loaded.bar_interval.total_seconds()
    if len(loaded.bars) > 1 and seconds != about.bar_interval_seconds:
        raise DataError(path, f"holds {interval_name(seconds)} bars but the bundle trades "
                              f"{interval_name(about.bar_interval_seconds)} bars; export "
                              f"{interval_name(about.bar_interval_seconds)} bars")
    frame = loaded.bars
    for column, feature in (("volume", "volume_z"), ("spread", "spread_rel")):
        if feature in about.feature_columns and column not in frame.columns:
            raise DataError(path, f"has no {column} column, which the bundle's feature {feature!r} reads; "
                                  f"export the bars with their {column}")
    if about.costs.get("spread_points") is None and "spread" not in frame.columns:
        raise DataError(path, "has no spread column and the bundle's costs read the per-bar spread; export the "
                              "bars with their spread")
    needed = about.warmup_bars + 1
    if need_history and len(frame) < needed:
        raise DataError(path, f"holds {len(frame):,} bars; the bundle needs at least {needed:,} "
                              f"({about.warmup_bars:,} bars of warm-up before its first decision); export more history")
    return BarFile(path, bar_arrays(frame), symbol_checked)


def _configured_symbol(about: BundleDescription) -> bool:
    """Whether training named the symbol in its config (then file names were not what named it)."""
    return bool(about.account.get("instrument", {}).get("source", "").startswith("instrument.symbol"))


__all__ = ["BarFile", "InstrumentConfig", "interval_name", "parse_bar_time", "read_bar_file"]
