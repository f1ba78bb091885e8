"""Closed bars as plain arrays: what the feature step reads, whether from a whole file or from new bars."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NANOSECONDS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class BarArrays:
    """Bars by column: open times (ns since the epoch) and prices; ``volume`` and ``spread`` are empty when the
    file has none."""

    timestamps: np.ndarray  # int64 ns
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spread: np.ndarray = field(default_factory=lambda: np.zeros(0))  # in price units

    def __len__(self) -> int:
        return len(self.close)

    def rows(self, start: int, stop: int) -> BarArrays:
        """Bars ``start .. stop - 1`` (views, no copy)."""
        return self.take(slice(start, stop))

    def take(self, index: slice | np.ndarray) -> BarArrays:
        """The bars ``index`` picks (a slice or a boolean mask); the optional columns stay empty when empty."""
        def part(values: np.ndarray) -> np.ndarray:
            return values[index] if len(values) else values

        return BarArrays(self.timestamps[index], self.open[index], self.high[index], self.low[index],
                         self.close[index], part(self.volume), part(self.spread))

    def fields(self) -> np.ndarray:
        """The feature step's input ``(N, 7)``: open time in whole seconds since 1970 (UTC), open, high, low,
        close, tick volume and spread (0 where the file has none), the order of
        :data:`rltrader.features.expressions.BAR_FIELDS` and of the ONNX graph's ``bar`` input."""
        n = len(self)
        out = np.zeros((n, 7))
        out[:, 0] = np.floor_divide(self.timestamps, NANOSECONDS_PER_SECOND).astype(np.float64)
        out[:, 1], out[:, 2], out[:, 3], out[:, 4] = self.open, self.high, self.low, self.close
        if len(self.volume):
            out[:, 5] = self.volume
        if len(self.spread):
            out[:, 6] = self.spread
        return out


def bar_arrays(frame: pd.DataFrame) -> BarArrays:
    """Canonical bars (a time index, open/high/low/close, optional volume and spread) as arrays."""
    def column(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else np.zeros(0)

    return BarArrays(frame.index.asi8.astype(np.int64), column("open"), column("high"), column("low"),
                     column("close"), column("volume"), column("spread"))




def bar_time(stamp: int) -> str:
    """A bar's open time (ns since the epoch) as people read it: ``2024-01-02 13:15:00``."""
    return str(np.datetime64(int(stamp), "ns").astype("datetime64[s]")).replace("T", " ")


__all__ = ["BarArrays", "bar_arrays", "bar_time"]
