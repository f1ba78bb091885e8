"""The account's terms: its currency, the instrument, how big a full position is, how P&L converts.

Three sizings, as MetaTrader users think of them:

* ``equity_fraction`` (default): a full long or short is a notional of ``equity_fraction`` x
  equity, converted to units at the fill's price (and rate) and held until the next trade.
  Returns then mean the same thing on gold, yen or an index.
* ``lots``: ``lots`` x the instrument's contract size (100 oz for XAUUSD, 100,000 for FX).
* ``units``: ``max_position_size`` units, rltrader 0.1's arithmetic, kept to reproduce old runs.

The two fixed sizings are one number of units; only ``equity_fraction`` depends on the
account's path, which is why the environments carry the units held as state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rltrader.config import Config
from rltrader.env.conversion import ConversionPlan, plan_conversion
from rltrader.env.instrument import Instrument, resolve_instrument


@dataclass(frozen=True)
class AccountTerms:
    """Everything the arithmetic and the reports need to know about the account and the instrument."""

    currency: str
    initial_balance: float
    instrument: Instrument
    conversion: ConversionPlan
    sizing: str  # equity_fraction | lots | units
    size: float  # the equity fraction, or the fixed units of lots and units sizing

    @property
    def fraction_sizing(self) -> bool:
        """True when units are computed at each fill from equity (else ``size`` units, always)."""
        return self.sizing == "equity_fraction"

    def describe_sizing(self) -> str:
        if self.sizing == "equity_fraction":
            return (f"full position = {self.size:g} x equity as notional, converted to units at each fill "
                    "and held until the next trade")
        if self.sizing == "lots":
            lots = self.size / self.instrument.contract_size
            return f"{lots:g} lots x {self.instrument.contract_size:,.0f} units = {self.size:,.6g} units"
        return f"{self.size:g} units at full position (fixed, max_position_size)"

    def to_json(self) -> dict[str, object]:
        """The terms as a report states them."""
        instrument = self.instrument
        return {
            "currency": self.currency, "initial_balance": self.initial_balance,
            "instrument": {"symbol": instrument.symbol, "base": instrument.base, "quote": instrument.quote,
                           "contract_size": instrument.contract_size, "source": instrument.source},
            "sizing": self.sizing, "size": self.size, "sizing_description": self.describe_sizing(),
            "conversion": self.conversion.description,
        }


def account_terms(config: Config, data_path: str | Path | None) -> AccountTerms:
    """The terms for trading the bars of ``data_path`` under ``config``; raises a one-line
    :class:`~rltrader.errors.UserInputError` for a cross without a usable conversion file."""
    instrument = resolve_instrument(config.instrument, data_path)
    conversion = plan_conversion(instrument, config.account)
    env = config.env
    if env.sizing == "equity_fraction":
        size = env.equity_fraction
    elif env.sizing == "lots":
        size = env.lots * instrument.contract_size
    else:
        size = env.max_position_size
    return AccountTerms(config.account.currency, env.initial_balance, instrument, conversion, env.sizing, size)


__all__ = ["AccountTerms", "account_terms"]
