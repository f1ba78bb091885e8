"""The market as flat numpy arrays, with every cost folded into one lookup table.

Execution model (the one place it is defined; the environments, the vectorized
environment and the evaluation ledger all read :attr:`MarketData.step_pnl`):

* the agent decides at bar ``t``'s close, seeing features up to and including bar ``t``;
* the order fills at bar ``t+1``'s open; every unit bought or sold pays half the spread of
  bar ``t+1`` plus the commission, so a round trip pays one full spread;
* the position held before the fill earns ``open[t+1] - close[t]`` (the gap) and pays
  swap when a daily rollover falls between the two bars; the new position earns
  ``close[t+1] - open[t+1]``; equity is marked to the close.

Positions can only be ``-size``, ``0`` or ``+size``, so the profit of one step depends
only on the bar and on the (held, target) pair: nine numbers per bar, computed here once,
vectorized. Looking them up instead of recomputing them makes a step cheap and makes the
single and vectorized environments agree to the last bit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rltrader.config import Config
from rltrader.data.loader import infer_point
from rltrader.errors import ConfigError
from rltrader.features.splits import SPLIT_NAMES
from rltrader.known_answer import KnownAnswerMarket, read_market
from rltrader.preprocessing import SPLIT_COLUMN

if TYPE_CHECKING:
    from rltrader.preprocessing import PreparedData

#: Action index -> position sign. Discrete(3): 0 short, 1 flat, 2 long.
ACTION_SIGNS = np.array([-1.0, 0.0, 1.0])
ACTION_NAMES = ("short", "flat", "long")
FLAT = 1
N_ACTIONS = 3
#: Columns of :attr:`MarketData.step_table` after the nine step profits.
OPEN_COLUMN, CLOSE_COLUMN = 9, 10


@dataclass(frozen=True)
class MarketData:
    """Everything an environment needs per bar, indexed by the row of the prepared parquet."""

    timestamps: np.ndarray  # datetime64[ns], (T,)
    features: np.ndarray  # float32, (T, F), C-contiguous, already normalized
    open: np.ndarray  # float64, (T,)
    close: np.ndarray  # float64, (T,)
    trade_cost: np.ndarray  # float64, (T,): cost per unit traded at bar t's open
    rollover_nights: np.ndarray  # float64, (T,): nights of swap between bar t-1 and bar t
    step_pnl: np.ndarray  # float64, (T, 9): profit of the step that fills at bar t, [held*3 + action]
    split_codes: np.ndarray  # int8, (T,)
    split_rows: dict[str, tuple[int, int]]
    feature_columns: tuple[str, ...]
    bars_per_year: float
    position_size: float
    swap_long: float
    swap_short: float
    spread_source: str
    known_answer: KnownAnswerMarket | None = None  # the generator of a known-answer market (its oracle)

    @functools.cached_property
    def step_table(self) -> np.ndarray:
        """``(T, 11)``: the nine step profits, the open and the close, side by side.

        What a compiled step reads per bar, in one array (one argument, one cache-line
        run); built once per market, shared by every environment and evaluation on it.
        """
        return np.column_stack([self.step_pnl, self.open, self.close])

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
    def from_prepared(cls, prepared: PreparedData, config: Config, data_path: str | Path | None = None) -> MarketData:
        """Read the cached parquet of :func:`rltrader.preprocessing.preprocess`.

        ``data_path`` is the bar file as the caller named it: a cache entry records the path it
        was first built from, and a known-answer market's oracle lies beside the file."""
        frame = prepared.load()
        split_rows = {name: prepared.split_rows(name) for name in SPLIT_NAMES}
        source = prepared.metadata["source"]
        path = data_path if data_path is not None else source["path"]
        return cls.from_frame(
            frame, prepared.feature_columns, split_rows, float(prepared.metadata["bars"]["bars_per_year"]), config,
            source=str(source["path"]), known_answer=read_market(path, source.get("sha256")),
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
    ) -> MarketData:
        """Build the arrays and cost tables from a frame with timestamp, open, close[, spread]."""
        open_ = frame["open"].to_numpy(dtype=np.float64)
        close = frame["close"].to_numpy(dtype=np.float64)
        spread, spread_source = _spread(frame, close, config, source)
        trade_cost = 0.5 * spread + config.costs.commission_per_unit
        timestamps = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
        nights = rollover_nights(timestamps, config.costs.triple_swap_weekday)
        size = config.env.max_position_size
        step_pnl = step_pnl_table(
            open_, close, trade_cost, nights * config.costs.swap_long, nights * config.costs.swap_short, size
        )
        features = np.ascontiguousarray(frame[list(feature_columns)].to_numpy(dtype=np.float32))
        codes = (frame[SPLIT_COLUMN].to_numpy(dtype=np.int8) if SPLIT_COLUMN in frame
                 else np.zeros(len(frame), np.int8))
        return cls(
            timestamps=timestamps, features=features, open=open_, close=close, trade_cost=trade_cost,
            rollover_nights=nights, step_pnl=step_pnl, split_codes=codes,
            split_rows={name: (int(a), int(b)) for name, (a, b) in split_rows.items()},
            feature_columns=tuple(feature_columns), bars_per_year=float(bars_per_year), position_size=float(size),
            swap_long=config.costs.swap_long, swap_short=config.costs.swap_short, spread_source=spread_source,
            known_answer=known_answer,
        )


def _spread(frame: pd.DataFrame, close: np.ndarray, config: Config, source: str) -> tuple[np.ndarray, str]:
    """Per-bar spread in price units: the file's column, or the configured points x point size."""
    points = config.costs.spread_points
    if points is None:
        if "spread" not in frame:
            raise ConfigError(
                f"{source}: the data has no spread column; set costs.spread_points "
                "(e.g. 20 for XAUUSD with point 0.01) so trades are not free"
            )
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


def step_pnl_table(
    open_: np.ndarray,
    close: np.ndarray,
    trade_cost: np.ndarray,
    swap_long: np.ndarray,
    swap_short: np.ndarray,
    size: float,
) -> np.ndarray:
    """Profit of the step filling at bar ``t`` for each (held, target) pair: ``(T, 9)``.

    Column ``held * 3 + target`` with both in action codes (0 short, 1 flat, 2 long).
    Row 0 has no previous close and is NaN: no step fills at the first bar.
    """
    table = np.full((len(close), 9), np.nan)
    gap, body = price_moves(open_, close)
    for held_code, held_sign in enumerate(ACTION_SIGNS):
        held = held_sign * size
        swap = held * swap_long if held > 0 else -held * swap_short
        for target_code, target_sign in enumerate(ACTION_SIGNS):
            target = target_sign * size
            table[:, held_code * 3 + target_code] = held * gap + target * body - abs(target - held) * trade_cost - swap
    return table


__all__ = [
    "ACTION_NAMES", "ACTION_SIGNS", "CLOSE_COLUMN", "FLAT", "N_ACTIONS", "OPEN_COLUMN", "MarketData", "price_moves",
    "rollover_nights", "step_pnl_table",
]
