"""From the instrument's quote currency to the account currency, bar by bar, without look-ahead.

A profit in yen is worth a different number of dollars every bar. Each step's profit and
costs are converted at the rate known at the close of the bar the step ends on, and a full
position's notional at the rate known at the fill (the bar's open):

* quote = account (XAUUSD, EURUSD in a USD account): no conversion, the rate is 1;
* base = account (USDJPY in a USD account): the pair's own price converts, 1 / price;
* a cross (GBPJPY in a USD account): a second bar file of the account/quote pair (USDJPY,
  rate 1 / price) or the quote/account pair (JPYUSD, rate = price), read as of each time:
  the close of the last conversion bar that has ended, or the open of one that has begun.

:func:`plan_conversion` decides which from the names alone (cheap, so the command line can
refuse a cross without a conversion file before anything runs); :func:`conversion_rates`
computes the rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.config import AccountConfig, LoadingConfig
from rltrader.data.loader import bar_interval, load_bars
from rltrader.env.instrument import Instrument, parse_pair
from rltrader.errors import ConfigError, DataError

#: How the rate is obtained: none, 1 / the pair's own price, the conversion file's price (inverted or not).
IDENTITY, OWN_INVERSE, FILE_INVERSE, FILE = "identity", "own_inverse", "file_inverse", "file"
#: A conversion file may end this long before the bars do (a weekend, a holiday) and still count.
MAX_STALE = np.timedelta64(4, "D")


@dataclass(frozen=True)
class ConversionPlan:
    """Which rate converts the quote currency into the account currency, in words for the report."""

    method: str
    description: str
    path: Path | None = None


@dataclass(frozen=True)
class ConversionRates:
    """Account currency per unit of quote currency, per bar: at the close and at the open (the fill)."""

    at_close: np.ndarray  # float64 (T,)
    at_open: np.ndarray  # float64 (T,)


def plan_conversion(instrument: Instrument, account: AccountConfig) -> ConversionPlan:
    """How ``instrument``'s profits reach ``account.currency``; a one-line error when they cannot."""
    currency, quote = account.currency, instrument.quote
    if quote is None:
        return ConversionPlan(IDENTITY, f"none: prices taken as {currency} ({instrument.source})")
    if quote == currency:
        return ConversionPlan(IDENTITY, f"none: {instrument.symbol} is quoted in {currency}, the account currency")
    if instrument.base == currency:
        return ConversionPlan(OWN_INVERSE, f"{quote} to {currency} at 1 / {instrument.symbol}'s own price")
    need = f"{currency}{quote} or {quote}{currency}"
    if account.conversion_path is None:
        raise ConfigError(
            f"{instrument.symbol} is quoted in {quote} and the account is in {currency}: give --conversion_path "
            f"(account.conversion_path) a bar file of {need}, named after the pair (e.g. {currency}{quote}_H1.csv)"
        )
    path = Path(account.conversion_path)
    if not path.is_file():
        raise DataError(path, "conversion file not found; check --conversion_path")
    pair = parse_pair(path.name)
    if pair == (currency, quote):
        return ConversionPlan(FILE_INVERSE, f"{quote} to {currency} at 1 / {currency}{quote} from {path.name}", path)
    if pair == (quote, currency):
        return ConversionPlan(FILE, f"{quote} to {currency} at {quote}{currency} from {path.name}", path)
    named = f"{pair[0]}{pair[1]}" if pair else "no recognised pair"
    raise DataError(path, f"its name says {named}, but converting {instrument.symbol} into {currency} needs {need}; "
                          "pass that pair's bar file to --conversion_path")


def conversion_rates(plan: ConversionPlan, timestamps: np.ndarray, open_: np.ndarray, close: np.ndarray,
                     loading: LoadingConfig | None = None) -> ConversionRates:
    """The rates of ``plan`` for bars stamped ``timestamps`` (bar open times) with these prices."""
    if plan.method == IDENTITY:
        ones = np.ones(len(close))
        return ConversionRates(ones, ones)
    if plan.method == OWN_INVERSE:
        return ConversionRates(1.0 / close, 1.0 / open_)
    assert plan.path is not None
    at_close, at_open = _file_rates(plan.path, timestamps, loading)
    if plan.method == FILE_INVERSE:
        return ConversionRates(1.0 / at_close, 1.0 / at_open)
    return ConversionRates(at_close, at_open)


def _file_rates(path: Path, timestamps: np.ndarray, loading: LoadingConfig | None) -> tuple[np.ndarray, np.ndarray]:
    """The conversion file's latest known price at each bar's close and at each bar's open."""

    loaded = load_bars(path, loading)
    stamps = loaded.bars.index.to_numpy(dtype="datetime64[ns]")
    times = np.asarray(timestamps, dtype="datetime64[ns]")
    if stamps[0] > times[0]:
        raise DataError(path, f"conversion bars start at {stamps[0]}, after the traded bars' first bar {times[0]}; "
                              "export the conversion pair from an earlier date")
    if stamps[-1] < times[-1] - MAX_STALE:
        raise DataError(path, f"conversion bars end at {stamps[-1]}, before the traded bars' last bar {times[-1]}; "
                              "export the conversion pair up to the same date")
    interval = np.timedelta64(bar_interval(pd.DatetimeIndex(times), path).value, "ns")
    bar_open, bar_close = loaded.bars["open"].to_numpy(float), loaded.bars["close"].to_numpy(float)
    own_interval = np.timedelta64(loaded.bar_interval.value, "ns")
    return (known_price(stamps, bar_open, bar_close, own_interval, times + interval, closing=True),
            known_price(stamps, bar_open, bar_close, own_interval, times))


def known_price(stamps: np.ndarray, open_: np.ndarray, close: np.ndarray, interval: np.timedelta64,
                times: np.ndarray, closing: bool = False) -> np.ndarray:
    """The latest price known at each of ``times``: the close of the last bar that had ended by
    then, or the open of a later bar that had begun (bars stamped with their open time).

    ``closing`` marks ``times`` as bar closes, the last tick *before* that instant: a bar
    opening exactly then has not begun yet (at a fill, an open at the same instant is known)."""
    begun = np.searchsorted(stamps, times, side="left" if closing else "right") - 1
    ended = np.searchsorted(stamps + interval, times, side="right") - 1
    use_open = begun > ended
    price = np.where(use_open, open_[np.maximum(begun, 0)], close[np.maximum(ended, 0)])
    return price.astype(np.float64)


__all__ = ["FILE", "FILE_INVERSE", "IDENTITY", "OWN_INVERSE", "ConversionPlan", "ConversionRates",
           "conversion_rates", "known_price", "plan_conversion"]
