"""The market as flat numpy arrays, with every cost and conversion folded into one per-bar table.

Execution model (the one place it is defined; the environments, the vectorized
environment, the fast evaluator and the evaluation ledger all read :attr:`MarketData.step_table`):

* the agent decides at bar ``t``'s close, seeing features up to and including bar ``t``;
* the order fills at bar ``t+1``'s open; every unit bought or sold pays half the spread of
  bar ``t+1`` plus the commission, so a round trip pays one full spread;
* the position held before the fill earns ``open[t+1] - close[t]`` (the gap) and pays
  swap when a daily rollover falls between the two bars; the new position earns
  ``close[t+1] - open[t+1]``; equity is marked to the close;
* price moves and the spread are in the quote currency and are converted to the account
  currency at the rate known at bar ``t+1``'s close (:mod:`rltrader.env.conversion`); the
  open position's profit stays in the quote currency until it closes, as in MetaTrader, so
  each step also revalues what it had made by the previous close at the new rate (equity is
  then always the balance plus the floating profit at today's rate; a one-lot USDJPY long
  from ``p0`` is worth ``lots x contract x (p1 - p0) / p1`` dollars at any later close ``p1``);
  commission and swap are configured in the account currency;
* how many units a full position holds is the account's sizing (:mod:`rltrader.env.account`):
  fixed units, or a share of equity converted to units at the fill and held until the next trade.

So the profit of one step is ``held * GAP + target * BODY - |target - held| * COST - swap +
revaluation`` in units held before and after the fill, read from per-unit columns computed here once,
vectorized. Every consumer evaluates that expression in that order (IEEE doubles, no
fast-math), which keeps the single and vectorized environments and the ledgers equal to
the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rltrader.config import Config, LoadingConfig
from rltrader.data.known_answer import KnownAnswerMarket, read_market
from rltrader.data.loader import infer_point
from rltrader.data.spread import require_spread
from rltrader.engine.kernels.accounts import (
    BODY,
    CLOSE_COLUMN,
    CLOSE_RATE,
    COST,
    GAP,
    NOTIONAL,
    OPEN_COLUMN,
    SWAP_LONG,
    SWAP_SHORT,
    TABLE_COLUMNS,
)
from rltrader.env.account import AccountTerms, account_terms
from rltrader.env.conversion import IDENTITY, ConversionRates, conversion_rates
from rltrader.errors import ConfigError
from rltrader.features.preparation import SPLIT_COLUMN
from rltrader.features.splits import SPLIT_NAMES

if TYPE_CHECKING:
    from rltrader.features.preparation import PreparedData

#: Action index -> position sign. Discrete(3): 0 short, 1 flat, 2 long.
ACTION_SIGNS = np.array([-1.0, 0.0, 1.0])
ACTION_NAMES = ("short", "flat", "long")
FLAT = 1
N_ACTIONS = 3


@dataclass(frozen=True)
class MarketData:
    """Everything an environment needs per bar, indexed by the row of the prepared parquet."""

    timestamps: np.ndarray  # datetime64[ns], (T,)
    features: np.ndarray  # float32, (T, F), C-contiguous, already normalized
    open: np.ndarray  # float64, (T,)
    close: np.ndarray  # float64, (T,)
    trade_cost: np.ndarray  # float64, (T,): cost per unit traded at bar t's open, in the quote currency
    rollover_nights: np.ndarray  # float64, (T,): nights of swap between bar t-1 and bar t
    step_table: np.ndarray  # float64, (T, TABLE_COLUMNS): see GAP ... CLOSE_RATE
    split_codes: np.ndarray  # int8, (T,)
    split_rows: dict[str, tuple[int, int]]
    feature_columns: tuple[str, ...]
    bars_per_year: float
    terms: AccountTerms
    swap_long: float
    swap_short: float
    spread_source: str
    known_answer: KnownAnswerMarket | None = None  # the generator of a known-answer market (its oracle)

    @property
    def fraction_sizing(self) -> bool:
        """Units of a full position follow equity (computed at each fill) rather than being fixed."""
        return self.terms.fraction_sizing

    @property
    def converts(self) -> bool:
        """Profits change currency at a varying rate (otherwise every rate is exactly 1.0)."""
        return self.terms.conversion.method != IDENTITY

    @property
    def size(self) -> float:
        """The equity fraction of a full position, or its fixed units."""
        return self.terms.size

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def rows(self, split: str) -> tuple[int, int]:
        """``[start, stop)`` rows of a split; raises a clear error for an unknown name."""
        if split not in self.split_rows:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(self.split_rows)}")
        return self.split_rows[split]

    def windows(self, window: int) -> np.ndarray:
        """Read-only view ``(T - window + 1, window * F)``: row ``r`` is bars ``r .. r+window-1``.

        A strided view, not a copy: rows overlap in memory, so indexing it with an array of
        rows gathers every observation of a vectorized step in one call.
        """
        flat = self.features.reshape(-1)
        n_rows = self.features.shape[0] - window + 1
        item = flat.itemsize
        return np.lib.stride_tricks.as_strided(
            flat, shape=(n_rows, window * self.n_features), strides=(self.n_features * item, item), writeable=False
        )

    @classmethod
    def from_prepared(cls, prepared: PreparedData, config: Config, data_path: str | Path | None = None,
                      spread_multiplier: float = 1.0) -> MarketData:
        """Read the cached parquet of :func:`rltrader.features.preparation.preprocess`.

        ``data_path`` is the bar file as the caller named it: a cache entry records the path it
        was first built from, and a known-answer market's oracle lies beside the file.
        ``spread_multiplier`` scales every bar's spread (a cost stress test: 2.0 charges twice the spread)."""
        frame = prepared.load()
        split_rows = {name: prepared.split_rows(name) for name in SPLIT_NAMES}
        source = prepared.metadata["source"]
        path = data_path if data_path is not None else source["path"]
        return cls.from_frame(
            frame, prepared.feature_columns, split_rows, float(prepared.metadata["bars"]["bars_per_year"]), config,
            source=str(path), known_answer=read_market(path, source.get("sha256")), spread_multiplier=spread_multiplier,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        feature_columns: list[str] | tuple[str, ...],
        split_rows: dict[str, tuple[int, int]],
        bars_per_year: float,
        config: Config,
        source: str = "data",
        known_answer: KnownAnswerMarket | None = None,
        spread_multiplier: float = 1.0,
    ) -> MarketData:
        """Build the arrays and cost tables from a frame with timestamp, open, close[, spread]."""
        open_ = frame["open"].to_numpy(dtype=np.float64)
        close = frame["close"].to_numpy(dtype=np.float64)
        spread, spread_source = _spread(frame, close, config, source)
        if spread_multiplier != 1.0:
            spread, spread_source = spread * spread_multiplier, f"{spread_source} x {spread_multiplier:g}"
        trade_cost = 0.5 * spread + config.costs.commission_per_unit
        timestamps = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
        nights = rollover_nights(timestamps, config.costs.triple_swap_weekday)
        terms = account_terms(config, source)
        rates = conversion_rates(terms.conversion, timestamps, open_, close,
                                 LoadingConfig(max_jump_mads=config.data.max_jump_mads))
        table = step_table(open_, close, spread, config.costs.commission_per_unit, nights * config.costs.swap_long,
                           nights * config.costs.swap_short, rates)
        features = np.ascontiguousarray(frame[list(feature_columns)].to_numpy(dtype=np.float32))
        codes = (frame[SPLIT_COLUMN].to_numpy(dtype=np.int8) if SPLIT_COLUMN in frame
                 else np.zeros(len(frame), np.int8))
        return cls(
            timestamps=timestamps, features=features, open=open_, close=close, trade_cost=trade_cost,
            rollover_nights=nights, step_table=table, split_codes=codes,
            split_rows={name: (int(a), int(b)) for name, (a, b) in split_rows.items()},
            feature_columns=tuple(feature_columns), bars_per_year=float(bars_per_year), terms=terms,
            swap_long=config.costs.swap_long, swap_short=config.costs.swap_short, spread_source=spread_source,
            known_answer=known_answer,
        )


def _spread(frame: pd.DataFrame, close: np.ndarray, config: Config, source: str) -> tuple[np.ndarray, str]:
    """Per-bar spread in price units: the file's column, or the configured points x point size."""
    points = config.costs.spread_points
    require_spread(source, frame.columns, config)  # preprocessing refused such a file already
    if points is None:
        return frame["spread"].to_numpy(dtype=np.float64), "per-bar spread column"
    point = config.data.point if config.data.point is not None else infer_point(close)[0]
    return np.full(len(frame), points * point), f"fixed {points:g} points x {point:g}"


def rollover_nights(timestamps: np.ndarray, triple_weekday: int | None) -> np.ndarray:
    """Nights of swap between bar ``t-1`` and bar ``t``: 1 per date change, 3 after ``triple_weekday``.

    MT5 charges one rollover per trading night and three on Wednesday's to pay for the
    weekend, so a Friday-to-Monday gap counts one night, not three.
    """
    days = timestamps.astype("datetime64[D]")
    nights = np.zeros(len(timestamps), dtype=np.float64)
    changed = days[1:] != days[:-1]
    nights[1:][changed] = 1.0
    if triple_weekday is not None:
        weekday = pd.DatetimeIndex(timestamps[:-1]).day_of_week.to_numpy()
        nights[1:][changed & (weekday == triple_weekday)] = 3.0
    return nights


def price_moves(open_: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar: the gap earned by the position held over the open (``open[t] - close[t-1]``,
    NaN at bar 0) and the move earned after the fill (``close[t] - open[t]``)."""
    gap = np.full(len(close), np.nan)
    gap[1:] = open_[1:] - close[:-1]
    return gap, close - open_


def step_table(
    open_: np.ndarray,
    close: np.ndarray,
    spread: np.ndarray,
    commission: float,
    swap_long: np.ndarray,
    swap_short: np.ndarray,
    rates: ConversionRates,
) -> np.ndarray:
    """The per-unit columns of every bar, in the account currency: ``(T, TABLE_COLUMNS)``.

    Row 0 has no previous close: its gap is NaN (no step fills at the first bar). With no
    conversion the rates are exactly 1.0, so every product below is exact and the table's
    profits are those of rltrader 0.1's unconverted arithmetic, bit for bit.
    """
    table = np.empty((len(close), TABLE_COLUMNS))
    gap, body = price_moves(open_, close)
    rate = rates.at_close
    table[:, GAP] = gap * rate
    table[:, BODY] = body * rate
    table[:, COST] = 0.5 * spread * rate + commission
    table[:, SWAP_LONG] = swap_long
    table[:, SWAP_SHORT] = swap_short
    table[:, NOTIONAL] = open_ * rates.at_open
    table[:, OPEN_COLUMN] = open_
    table[:, CLOSE_COLUMN] = close
    table[:, CLOSE_RATE] = rate
    return table


def step_profit(held: float, target: float, entry: float, row: np.ndarray, previous: np.ndarray) -> float:
    """Profit of one step from ``held`` units (filled at ``entry``) to ``target`` units over the
    bar of table row ``row`` (``previous`` is the row before).

    The reference form of the arithmetic every compiled step repeats in the same order. The
    last term revalues the open position's profit so far (still in the quote currency, as in
    MetaTrader) from the previous close's rate to this one's; without conversion it is 0."""
    swap = held * row[SWAP_LONG] if held > 0 else -held * row[SWAP_SHORT]
    revaluation = held * (previous[CLOSE_COLUMN] - entry) * (row[CLOSE_RATE] - previous[CLOSE_RATE])
    return float(held * row[GAP] + target * row[BODY] - abs(target - held) * row[COST] - swap + revaluation)


__all__ = [
    "ACTION_NAMES", "ACTION_SIGNS", "BODY", "CLOSE_COLUMN", "CLOSE_RATE", "COST", "FLAT", "GAP", "NOTIONAL",
    "N_ACTIONS", "OPEN_COLUMN", "SWAP_LONG", "SWAP_SHORT", "TABLE_COLUMNS", "MarketData", "price_moves",
    "rollover_nights", "step_profit", "step_table",
]
