"""Every built-in feature, declared once (:mod:`rltrader.features.expressions`).

These declarations are the only place a feature's arithmetic is written: the batch columns training
reads, the live stream's step and the exported ONNX graph are all compiled from them. All are causal
(they read the current bar and earlier ones only). Price-scale quantities are divided by the close, so a
feature means the same at 1,200 and at 2,400 dollars an ounce. Exponential averages follow pandas'
``ewm(adjust=False)`` (Wilder's ATR and RSI: ``alpha = 1 / period``; MACD: ``span``), rolling windows are
population statistics (``ddof = 0``).

To add a feature: declare it in :func:`feature_declarations` under the option that turns it on (and give
the option to :class:`~rltrader.config.FeatureConfig`); nothing else changes.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator

from rltrader.config import FeatureConfig
from rltrader.features.expressions import (
    CLOSE,
    HIGH,
    LOW,
    SPREAD,
    TIME,
    VOLUME,
    Expr,
    absolute,
    cos,
    ewm,
    is_nan,
    lag,
    log,
    log1p,
    maximum,
    modulo,
    pandas_alpha,
    rolling,
    sign,
    sin,
    where,
)
from rltrader.features.program import FeatureProgram

SECONDS_PER_DAY = 86_400.0


def log_return(horizon: int) -> Expr:
    """Log return over ``horizon`` bars."""
    log_close = log(CLOSE)
    return log_close - lag(log_close, horizon)


def move_sign() -> Expr:
    """+1 for a close above the previous one, -1 below, 0 unchanged: the direction the bar moved."""
    return sign(CLOSE - lag(CLOSE, 1))


def realized_volatility(window: int) -> Expr:
    """Standard deviation of the last ``window`` one-bar log returns."""
    return rolling(log_return(1), window)[1]


def average_true_range(period: int) -> Expr:
    """Wilder's ATR relative to the close; the first bar's true range is its high - low."""
    previous = lag(CLOSE, 1)
    high_low = HIGH - LOW
    widest = maximum(maximum(high_low, absolute(HIGH - previous)), absolute(LOW - previous))
    true_range = where(is_nan(previous), high_low, widest)
    return ewm(true_range, pandas_alpha(alpha=1.0 / period)) / CLOSE


def relative_strength_index(period: int) -> Expr:
    """Wilder's RSI rescaled from 0..100 to -1..1 (0 is neutral; 0 too while nothing moved)."""
    change = CLOSE - lag(CLOSE, 1)
    unknown = is_nan(change)
    gain = ewm(where((change > 0.0) | unknown, change, 0.0), pandas_alpha(alpha=1.0 / period))
    loss = ewm(where((change < 0.0) | unknown, -change, -0.0), pandas_alpha(alpha=1.0 / period))
    total = gain + loss
    ratio = where(total > 0.0, gain / total, 0.5)
    return (ratio - 0.5) * 2.0


def macd(fast: int, slow: int, signal: int) -> dict[str, Expr]:
    """MACD line, signal line and histogram, relative to the close."""
    line = ewm(CLOSE, pandas_alpha(span=fast)) - ewm(CLOSE, pandas_alpha(span=slow))
    signal_line = ewm(line, pandas_alpha(span=signal))
    return {"macd": line / CLOSE, "macd_signal": signal_line / CLOSE, "macd_hist": (line - signal_line) / CLOSE}


def bollinger_position(window: int, num_std: float) -> Expr:
    """Where the close sits between the bands: 0 at the mean, +-1 at the bands (0 when the window is flat)."""
    mean, std = rolling(CLOSE, window)
    width = num_std * std
    return where((width > 0.0) | is_nan(width), (CLOSE - mean) / width, 0.0)


def rolling_zscore(values: Expr, window: int) -> Expr:
    """``values`` in standard deviations of its last ``window`` values from their mean (0 when they are flat)."""
    mean, std = rolling(values, window)
    return where((std > 0.0) | is_nan(std), (values - mean) / std, 0.0)


def cyclical(phase: Expr, prefix: str, harmonics: int) -> dict[str, Expr]:
    """A phase in [0, 1) as a point on the circle, so 23:45 sits next to 00:00; with ``harmonics`` > 1 also the
    points of ``k`` times the phase (``prefix_k_sin``, ``prefix_k_cos``): a pattern that repeats k times a
    cycle is then a linear function of the columns, as it is not of the first pair."""
    columns = {}
    for k in range(1, harmonics + 1):
        angle = 2.0 * math.pi * phase if k == 1 else 2.0 * math.pi * (k * phase)
        name = prefix if k == 1 else f"{prefix}_{k}"
        columns[f"{name}_sin"], columns[f"{name}_cos"] = sin(angle), cos(angle)
    return columns


def move_patterns(bars: int) -> dict[str, Expr]:
    """Which of the ``2 ** bars`` up/down sequences the last ``bars`` close-to-close moves made: one column per
    sequence (``pattern_uud``: up, up, then down on this bar; oldest first), 1 for the sequence made, else 0.

    Why: an edge set by the order of the last few moves (say, up when they hold an even number of down bars)
    is a product of their signs, which no single bar's return, no average and no linear filter of returns
    correlates with. A network can represent it, but gradient descent on noisy returns finds a product of
    signs very slowly: fitted to the next bar's return, an LSTM over the usual features found none of a
    3-bar parity edge in 14,000 bars, an MLP over the last 8 bars' returns 0.6 of it, one over their signs
    0.9 (``bench/README.md``, "Move patterns"). As indicators, any function of the last ``bars`` signs is a
    weighted sum of the columns: one straight line, as the calendar harmonics make a time-of-day block one.
    An unchanged close counts half up and half down (its two patterns get 0.5 each)."""
    move = move_sign()
    signs = [move if back == 0 else lag(move, back) for back in range(bars - 1, -1, -1)]  # oldest first
    columns = {}
    for code in itertools.product("ud", repeat=bars):
        made = [(1.0 + step) * 0.5 if letter == "u" else (1.0 - step) * 0.5
                for step, letter in zip(signs, code, strict=True)]
        columns["pattern_" + "".join(code)] = functools.reduce(operator.mul, made)
    return columns


def seconds_of_day() -> Expr:
    return modulo(TIME, SECONDS_PER_DAY)


def day_of_week_phase() -> Expr:
    """Monday 00:00 is 0; 1970-01-01 was a Thursday (weekday 3, as pandas counts)."""
    days = (TIME - seconds_of_day()) / SECONDS_PER_DAY
    return (modulo(days + 3.0, 7.0) + seconds_of_day() / SECONDS_PER_DAY) / 7.0


def feature_declarations(config: FeatureConfig, has_volume: bool, has_spread: bool) -> dict[str, Expr]:
    """The features ``config`` turns on for bars with (or without) volume and spread, in column order."""
    features: dict[str, Expr] = {f"ret_{h}": log_return(h) for h in config.return_horizons}
    features |= {f"vol_{w}": realized_volatility(w) for w in config.volatility_windows}
    if config.atr_period:
        features[f"atr_{config.atr_period}"] = average_true_range(config.atr_period)
    if config.rsi_period:
        features[f"rsi_{config.rsi_period}"] = relative_strength_index(config.rsi_period)
    if config.macd:
        features |= macd(config.macd.fast, config.macd.slow, config.macd.signal)
    if config.bollinger:
        features["bb_position"] = bollinger_position(config.bollinger.window, config.bollinger.num_std)
    if config.volume_zscore_window and has_volume:
        features["volume_z"] = rolling_zscore(log1p(VOLUME), config.volume_zscore_window)
        if config.signed_volume:
            features["signed_volume"] = move_sign() * features["volume_z"]
            if config.signed_volume_lags:
                features |= {f"signed_volume_{back}": lag(features["signed_volume"], back)
                             for back in range(1, config.signed_volume_lags + 1)}
    if config.spread and has_spread:
        features["spread_rel"] = SPREAD / CLOSE
    if config.time_of_day:
        features |= cyclical(seconds_of_day() / SECONDS_PER_DAY, "time_of_day", config.calendar_harmonics)
    if config.day_of_week:
        features |= cyclical(day_of_week_phase(), "day_of_week", config.calendar_harmonics)
    if config.move_patterns:
        features |= move_patterns(config.move_patterns)
    return features


@functools.lru_cache(maxsize=64)
def _program(config_json: str, has_volume: bool, has_spread: bool) -> FeatureProgram:
    config = FeatureConfig.model_validate_json(config_json)
    return FeatureProgram.compile(feature_declarations(config, has_volume, has_spread))


def feature_program(config: FeatureConfig, has_volume: bool, has_spread: bool) -> FeatureProgram:
    """The compiled features ``config`` turns on for bars with (or without) volume and spread."""
    return _program(json.dumps(config.model_dump(mode="json"), sort_keys=True), bool(has_volume), bool(has_spread))



def columns_program(config: FeatureConfig, columns: list[str]) -> FeatureProgram:
    """The compiled features of a trained model: its definition, for bars with volume and spread where its feature
    columns read them (a bundle records the columns it trained on, not what its file held)."""
    return feature_program(config, has_volume="volume_z" in columns, has_spread="spread_rel" in columns)


__all__ = ["average_true_range", "bollinger_position", "columns_program", "cyclical", "day_of_week_phase",
           "feature_declarations", "feature_program", "log_return", "macd", "move_patterns", "realized_volatility",
           "relative_strength_index", "rolling_zscore", "seconds_of_day"]
