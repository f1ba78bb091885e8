"""What is traded: the symbol, its base and quote currency, and how many units one lot holds.

MetaTrader names files after the symbol (``XAUUSDm_15min.csv``, ``USDJPY_H1_2016.csv``; a
broker suffix such as ``m`` may follow), so the first six letters of the file name usually
say what the prices are quoted in. Knowing it is what lets profits be converted to the
account currency; where the name says nothing (``momentum.csv``), the prices are taken as
quoted in the account currency and every report says so, rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rltrader.config import InstrumentConfig

#: Metals MetaTrader quotes against a currency (XAUUSD, XAGEUR, ...).
METALS = frozenset({"XAU", "XAG", "XPT", "XPD"})
#: ISO codes recognised in symbol names.
CURRENCIES = frozenset(
    "USD EUR JPY GBP CHF AUD NZD CAD SEK NOK DKK PLN HUF CZK TRY ZAR MXN SGD HKD CNH CNY RUB INR KRW THB ILS "
    "BRL TWD SAR AED".split()
)
_SYMBOL_START = re.compile(r"^([A-Za-z]{6})")


def parse_pair(name: str) -> tuple[str, str] | None:
    """``(base, quote)`` from a symbol or file name that starts with one (``USDJPY_H1.csv``), else None."""
    match = _SYMBOL_START.match(Path(name).name)
    if match is None:
        return None
    letters = match.group(1).upper()
    base, quote = letters[:3], letters[3:]
    if quote in CURRENCIES and (base in CURRENCIES or base in METALS):
        return base, quote
    return None


@dataclass(frozen=True)
class Instrument:
    """The traded symbol as the arithmetic needs it; ``quote is None`` when it is not known."""

    symbol: str | None
    base: str | None
    quote: str | None
    contract_size: float
    source: str  # where base and quote came from, for the report


def resolve_instrument(config: InstrumentConfig, data_path: str | Path | None) -> Instrument:
    """The instrument of ``data_path`` as ``config`` states it or its file name tells it."""
    pair = parse_pair(config.symbol) if config.symbol else None
    source = f"instrument.symbol {config.symbol}"
    if pair is None and data_path is not None and not config.symbol:
        pair = parse_pair(str(data_path))
        source = f"file name {Path(data_path).name}"
    base = config.base or (pair[0] if pair else None)
    quote = config.quote or (pair[1] if pair else None)
    if config.base or config.quote:
        source = "instrument.base/quote" if pair is None else f"{source}, instrument.base/quote"
    symbol = config.symbol.upper() if config.symbol else (f"{base}{quote}" if base and quote else None)
    if quote is None:
        where = Path(data_path).name if data_path is not None else "the data"
        source = f"{where} does not start with a symbol such as XAUUSD; set instrument.quote"
    return Instrument(symbol, base, quote, _contract_size(config, symbol, base, quote), source)


def _contract_size(config: InstrumentConfig, symbol: str | None, base: str | None, quote: str | None) -> float:
    """The configured size, else the table's entry for the symbol, the base, or FX for a currency pair."""
    if config.contract_size is not None:
        return config.contract_size
    sizes = config.contract_sizes
    for key in (symbol, base):
        if key and key in sizes:
            return float(sizes[key])
    if base in CURRENCIES and quote in CURRENCIES and "FX" in sizes:
        return float(sizes["FX"])
    return 1.0


__all__ = ["CURRENCIES", "METALS", "Instrument", "parse_pair", "resolve_instrument"]
