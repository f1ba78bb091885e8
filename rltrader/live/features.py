"""The batch pipeline's features, computed one closed bar at a time from a carried state.

Why a second implementation: :func:`rltrader.features.pipeline.compute_features` works on a whole
file (pandas, vectorized); deciding on a new bar must not recompute ten years of history. Here
each feature keeps what its next value needs:

* log returns and realized volatility: the last ``max(horizon, window) + 1`` log closes;
* Wilder's ATR and RSI and MACD's three averages: the running exponential average, advanced
  with pandas' own recursion for ``ewm(adjust=False)`` (``(w * old + a * new) / (w + a)`` with
  ``w = 1 - a``, skipped when the value repeats, started at the first defined value), so a stream
  started at a file's first bar carries the very averages the batch pipeline computes;
* Bollinger position and the volume z-score: the last ``window`` closes or log volumes, their mean
  and standard deviation summed by the batch pipeline's own function
  (:func:`rltrader.features.rolling.mean_std`), over the same values in the same order;
* spread / close and the time encodings: the bar alone.

:func:`advance_features` is compiled: a whole history costs microseconds per bar, and a single
new bar about one. ``tests/test_live.py`` and ``bench/parity.py`` check the streamed, normalized
features against the batch pipeline's on whole splits (max abs difference <= 1e-9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from rltrader.config import FeatureConfig
from rltrader.features.normalization import NormalizationStats
from rltrader.features.rolling import mean_std

#: Scalars of the carried state: bars seen, the previous close, and each average's value (NaN until started).
COUNT, PREVIOUS_CLOSE, ATR, RSI_GAIN, RSI_LOSS, MACD_FAST, MACD_SLOW, MACD_SIGNAL = range(8)
N_SCALARS = 8
NANOSECONDS_PER_DAY = 86_400 * 1_000_000_000
SECONDS_PER_DAY = 86_400.0


def pandas_alpha(alpha: float | None = None, span: float | None = None) -> float:
    """The smoothing weight pandas uses for ``ewm(alpha=...)`` or ``ewm(span=...)``: it converts both to a
    centre of mass and back (``1 / (1 + com)``), which may differ from the given alpha in the last bit."""
    com = (span - 1) / 2 if span is not None else (1 - alpha) / alpha  # type: ignore[operator]
    return 1.0 / (1.0 + float(com))


@dataclass(frozen=True)
class FeatureProgram:
    """Which features to compute, with their parameters as the compiled kernel reads them.

    :param names: every computed feature, in :func:`~rltrader.features.pipeline.compute_features`'s order
    :param ints: horizons and windows (see :meth:`of`)
    :param floats: smoothing weights and the Bollinger width
    """

    names: tuple[str, ...]
    horizons: np.ndarray
    vol_windows: np.ndarray
    ints: np.ndarray  # atr period, rsi period, macd on, bollinger window, volume window, spread, time, weekday,
    #                   calendar harmonics, signed volume
    floats: np.ndarray  # atr alpha, rsi alpha, macd fast, slow and signal alphas, bollinger num_std
    ring_sizes: tuple[int, int, int]  # log closes, closes, log volumes

    @classmethod
    def of(cls, config: FeatureConfig, has_volume: bool, has_spread: bool) -> FeatureProgram:
        """The program of ``config`` for bars with (or without) volume and spread columns."""
        names = [f"ret_{h}" for h in config.return_horizons] + [f"vol_{w}" for w in config.volatility_windows]
        if config.atr_period:
            names.append(f"atr_{config.atr_period}")
        if config.rsi_period:
            names.append(f"rsi_{config.rsi_period}")
        if config.macd:
            names += ["macd", "macd_signal", "macd_hist"]
        if config.bollinger:
            names.append("bb_position")
        volume_window = config.volume_zscore_window if (config.volume_zscore_window and has_volume) else 0
        signed_volume = bool(volume_window and config.signed_volume)
        if volume_window:
            names.append("volume_z")
        if signed_volume:
            names.append("signed_volume")
        spread = bool(config.spread and has_spread)
        if spread:
            names.append("spread_rel")
        harmonics = config.calendar_harmonics
        for cycle, on in (("time_of_day", config.time_of_day), ("day_of_week", config.day_of_week)):
            if on:
                for k in range(1, harmonics + 1):
                    prefix = cycle if k == 1 else f"{cycle}_{k}"
                    names += [f"{prefix}_sin", f"{prefix}_cos"]
        macd = config.macd
        ints = np.array([config.atr_period or 0, config.rsi_period or 0, int(macd is not None),
                         config.bollinger.window if config.bollinger else 0, volume_window, int(spread),
                         int(config.time_of_day), int(config.day_of_week), harmonics, int(signed_volume)],
                        dtype=np.int64)
        floats = np.array([
            pandas_alpha(alpha=1.0 / config.atr_period) if config.atr_period else 0.0,
            pandas_alpha(alpha=1.0 / config.rsi_period) if config.rsi_period else 0.0,
            pandas_alpha(span=macd.fast) if macd else 0.0, pandas_alpha(span=macd.slow) if macd else 0.0,
            pandas_alpha(span=macd.signal) if macd else 0.0,
            config.bollinger.num_std if config.bollinger else 0.0,
        ])
        longest = max([*config.return_horizons, *config.volatility_windows]) + 1
        return cls(names=tuple(names), horizons=np.array(config.return_horizons, dtype=np.int64),
                   vol_windows=np.array(config.volatility_windows, dtype=np.int64), ints=ints, floats=floats,
                   ring_sizes=(longest, max(int(ints[3]), 1), max(volume_window, 1)))


@dataclass
class FeatureState:
    """What the next bar's features need from the bars before it (see the module docstring).

    Rings hold the last values in arrival order modulo their size; ``scalars[COUNT]`` bars were seen."""

    scalars: np.ndarray
    log_closes: np.ndarray
    closes: np.ndarray
    log_volumes: np.ndarray

    @classmethod
    def empty(cls, program: FeatureProgram) -> FeatureState:
        scalars = np.full(N_SCALARS, np.nan)
        scalars[COUNT] = 0.0
        sizes = program.ring_sizes
        return cls(scalars, np.zeros(sizes[0]), np.zeros(sizes[1]), np.zeros(sizes[2]))

    def copy(self) -> FeatureState:
        return FeatureState(self.scalars.copy(), self.log_closes.copy(), self.closes.copy(), self.log_volumes.copy())

    def to_json(self) -> dict[str, list[float]]:
        """Exact as JSON: a float's ``repr`` reads back to the same bits."""
        return {name: getattr(self, name).tolist() for name in ("scalars", "log_closes", "closes", "log_volumes")}

    @classmethod
    def from_json(cls, raw: dict[str, list[float]]) -> FeatureState:
        return cls(*(np.array(raw[name], dtype=np.float64)
                     for name in ("scalars", "log_closes", "closes", "log_volumes")))


@dataclass(frozen=True)
class BarArrays:
    """New closed bars as the stream reads them: open times (ns since the epoch) and prices."""

    timestamps: np.ndarray  # int64 ns
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray = field(default_factory=lambda: np.zeros(0))  # empty when the file has none
    spread: np.ndarray = field(default_factory=lambda: np.zeros(0))  # in price units; empty when none

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


@njit(cache=True, nogil=True, inline="always")
def _ewm(state: np.ndarray, slot: int, value: float, alpha: float) -> float:
    """Advance pandas' ``ewm(adjust=False).mean()`` recursion by one value (NaN is a missing value)."""
    weighted = state[slot]
    if math.isnan(weighted):
        weighted = value
    elif not math.isnan(value) and weighted != value:
        old = 1.0 - alpha
        new = alpha if old != alpha else 1.0 - old  # pandas' irregular-interval branch when com == 1
        weighted = (old * weighted + new * value) / (old + new)
    state[slot] = weighted
    return weighted


@njit(cache=True, nogil=True, inline="always")
def _ring_window(ring: np.ndarray, newest: int, window: int, scratch: np.ndarray) -> np.ndarray:
    """The last ``window`` values of a ring (newest at index ``newest``), oldest first, in ``scratch``."""
    size = ring.shape[0]
    for i in range(window):
        scratch[i] = ring[(newest - window + 1 + i) % size]
    return scratch[:window]


@njit(cache=True, nogil=True)
def advance_features(horizons: np.ndarray, vol_windows: np.ndarray, ints: np.ndarray, floats: np.ndarray,
                     scalars: np.ndarray, log_closes: np.ndarray, closes: np.ndarray, log_volumes: np.ndarray,
                     timestamps: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                     log_close: np.ndarray, log_volume: np.ndarray, spread: np.ndarray, out: np.ndarray) -> None:
    """Raw features of each new bar into ``out`` ``(N, features)``, advancing the state in place.

    ``log_close`` and ``log_volume`` (``log1p``) come from numpy's own ufuncs, as in the batch
    pipeline: numpy's vectorized log differs from libm's in the last bit on a few values in ten
    thousand. A feature whose window is not full yet is NaN, as in the batch pipeline."""
    atr_period, rsi_period, macd_on, bb_window = ints[0], ints[1], ints[2], ints[3]
    volume_window, spread_on, time_on, weekday_on = ints[4], ints[5], ints[6], ints[7]
    harmonics, signed_volume = ints[8], ints[9]
    size = log_closes.shape[0]
    scratch = np.empty(max(size, closes.shape[0], log_volumes.shape[0]))
    for j in range(close.shape[0]):
        count = int(scalars[COUNT])  # this bar's index in the stream
        c = close[j]
        previous = scalars[PREVIOUS_CLOSE]
        log_closes[count % size] = log_close[j]
        column = 0
        for h in horizons:
            out[j, column] = log_closes[count % size] - log_closes[(count - h) % size] if count >= h else np.nan
            column += 1
        for w in vol_windows:
            if count >= w:  # w one-bar log returns, bars count - w + 1 .. count, oldest first
                for i in range(w):
                    bar = count - w + 1 + i
                    scratch[i] = log_closes[bar % size] - log_closes[(bar - 1) % size]
                out[j, column] = mean_std(scratch[:w])[1]
            else:
                out[j, column] = np.nan
            column += 1
        if atr_period:
            true_range = high[j] - low[j]
            if not math.isnan(previous):
                true_range = max(true_range, abs(high[j] - previous), abs(low[j] - previous))
            out[j, column] = _ewm(scalars, ATR, true_range, floats[0]) / c
            column += 1
        if rsi_period:
            change = c - previous  # NaN at the first bar
            gain = _ewm(scalars, RSI_GAIN, change if change > 0.0 or math.isnan(change) else 0.0, floats[1])
            loss = _ewm(scalars, RSI_LOSS, -change if change < 0.0 or math.isnan(change) else -0.0, floats[1])
            total = gain + loss
            ratio = gain / total if total > 0.0 else 0.5
            out[j, column] = (ratio - 0.5) * 2.0
            column += 1
        if macd_on:
            line = _ewm(scalars, MACD_FAST, c, floats[2]) - _ewm(scalars, MACD_SLOW, c, floats[3])
            signal = _ewm(scalars, MACD_SIGNAL, line, floats[4])
            out[j, column] = line / c
            out[j, column + 1] = signal / c
            out[j, column + 2] = (line - signal) / c
            column += 3
        if bb_window:
            closes[count % closes.shape[0]] = c
            if count >= bb_window - 1:
                mean, std = mean_std(_ring_window(closes, count % closes.shape[0], bb_window, scratch))
                width = floats[5] * std
                out[j, column] = (c - mean) / width if width > 0.0 else 0.0
            else:
                out[j, column] = np.nan
            column += 1
        if volume_window:
            log_volumes[count % log_volumes.shape[0]] = log_volume[j]
            if count >= volume_window - 1:
                mean, std = mean_std(_ring_window(log_volumes, count % log_volumes.shape[0], volume_window, scratch))
                out[j, column] = (log_volumes[count % log_volumes.shape[0]] - mean) / std if std > 0.0 else 0.0
            else:
                out[j, column] = np.nan
            column += 1
            if signed_volume:  # the sign of the bar's move (NaN at the first bar, as pandas' diff) times its z
                change = c - previous
                sign = np.nan if math.isnan(change) else (1.0 if change > 0.0 else (-1.0 if change < 0.0 else 0.0))
                out[j, column] = sign * out[j, column - 1]
                column += 1
        if spread_on:
            out[j, column] = spread[j] / c
            column += 1
        stamp = timestamps[j]
        day = stamp // NANOSECONDS_PER_DAY
        seconds = float((stamp - day * NANOSECONDS_PER_DAY) // 1_000_000_000)
        if time_on:
            phase = seconds / SECONDS_PER_DAY
            for k in range(1, harmonics + 1):  # as indicators.cyclical: 2 pi * (k * phase), the first as 2 pi * phase
                angle = 2.0 * np.pi * phase if k == 1 else 2.0 * np.pi * (k * phase)
                out[j, column] = math.sin(angle)
                out[j, column + 1] = math.cos(angle)
                column += 2
        if weekday_on:
            weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0, as pandas counts
            phase = (weekday + seconds / SECONDS_PER_DAY) / 7.0
            for k in range(1, harmonics + 1):
                angle = 2.0 * np.pi * phase if k == 1 else 2.0 * np.pi * (k * phase)
                out[j, column] = math.sin(angle)
                out[j, column + 1] = math.cos(angle)
                column += 2
        scalars[PREVIOUS_CLOSE] = c
        scalars[COUNT] = count + 1


class FeatureStream:
    """The features of a bundle, advanced bar by bar, normalized as in training.

    :param config: the bundle's feature definition
    :param columns: the observation's feature order (the bundle's ``feature_columns``)
    :param normalization: the train-split statistics
    """

    def __init__(self, config: FeatureConfig, columns: list[str], normalization: NormalizationStats) -> None:
        self.program = FeatureProgram.of(config, has_volume="volume_z" in columns,
                                         has_spread="spread_rel" in columns)
        missing = sorted(set(columns) - set(self.program.names))
        if missing:
            raise ValueError(f"the feature definition computes no {', '.join(missing)}")
        self.order = np.array([self.program.names.index(name) for name in columns], dtype=np.int64)
        self.mean = np.array([normalization.mean[name] for name in columns])
        self.std = np.array([normalization.std[name] for name in columns])
        self.clip = normalization.clip
        self.state = FeatureState.empty(self.program)

    @property
    def needs_volume(self) -> bool:
        return bool(self.program.ints[4])

    @property
    def needs_spread(self) -> bool:
        return bool(self.program.ints[5])

    def raw(self, bars: BarArrays) -> np.ndarray:
        """Raw features of ``bars`` ``(N, columns)`` in the observation's order; advances the state."""
        out = np.empty((len(bars), len(self.program.names)))
        program, state = self.program, self.state
        advance_features(program.horizons, program.vol_windows, program.ints, program.floats, state.scalars,
                         state.log_closes, state.closes, state.log_volumes, bars.timestamps, bars.high, bars.low,
                         bars.close, np.log(bars.close),
                         np.log1p(bars.volume) if len(bars.volume) else np.zeros(len(bars)),
                         bars.spread if len(bars.spread) else np.zeros(len(bars)), out)
        return out[:, self.order]

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`NormalizationStats.apply`'s arithmetic: float64 z-score, clip, float32."""
        values = (raw - self.mean) / self.std
        np.clip(values, -self.clip, self.clip, out=values)
        return values.astype(np.float32)


__all__ = ["BarArrays", "FeatureProgram", "FeatureState", "FeatureStream", "advance_features", "pandas_alpha"]
