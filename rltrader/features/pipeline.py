"""Turn canonical bars into the feature matrix the agent observes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.config import FeatureConfig
from rltrader.features import indicators

#: Sources whose code shapes the cached feature file: reading, validating, featurizing.
FEATURE_SOURCES = tuple(
    sorted(
        [*Path(__file__).parent.glob("*.py"), *(Path(__file__).parent.parent / "data").glob("*.py")]
    )
)


def source_digest(paths: tuple[Path, ...] = FEATURE_SOURCES) -> str:
    """Hash of the code that computes features: any edit changes the cache key by itself.

    A hand-bumped version number was the only guard before, and a forgotten bump once
    served features computed by older code as a cache hit.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# Part of the cache key: the manual version (bump it for changes outside these files,
# e.g. a pandas upgrade that changes results) plus the hash of the feature code.
FEATURE_CODE_VERSION = f"1+{source_digest()}"


@dataclass(frozen=True)
class FeatureMatrix:
    """Raw (unnormalized) features aligned with the bars; the first ``warmup`` rows are unusable."""

    values: pd.DataFrame
    warmup: int


def warmup_bars(config: FeatureConfig, has_volume: bool) -> int:
    """Bars needed before every feature is defined (the longest lookback)."""
    lookbacks = [max(config.return_horizons)]
    lookbacks += list(config.volatility_windows)
    if config.atr_period:
        lookbacks.append(config.atr_period)
    if config.rsi_period:
        lookbacks.append(config.rsi_period)
    if config.macd:
        lookbacks.append(config.macd.slow + config.macd.signal)
    if config.bollinger:
        lookbacks.append(config.bollinger.window)
    if config.volume_zscore_window and has_volume:
        lookbacks.append(config.volume_zscore_window)
    return max(lookbacks)


def compute_features(bars: pd.DataFrame, config: FeatureConfig) -> FeatureMatrix:
    """Compute every configured feature over ``bars``; all of them are causal (see indicators)."""
    close, high, low = bars["close"], bars["high"], bars["low"]
    columns: dict[str, pd.Series] = {}
    for horizon in config.return_horizons:
        columns[f"ret_{horizon}"] = indicators.log_returns(close, horizon)
    for window in config.volatility_windows:
        columns[f"vol_{window}"] = indicators.realized_volatility(close, window)
    if config.atr_period:
        columns[f"atr_{config.atr_period}"] = indicators.average_true_range(high, low, close, config.atr_period)
    if config.rsi_period:
        columns[f"rsi_{config.rsi_period}"] = indicators.relative_strength_index(close, config.rsi_period)
    if config.macd:
        macd = indicators.macd(close, config.macd.fast, config.macd.slow, config.macd.signal)
        columns.update({name: macd[name] for name in macd.columns})
    if config.bollinger:
        columns["bb_position"] = indicators.bollinger_position(
            close, config.bollinger.window, config.bollinger.num_std
        )
    has_volume = "volume" in bars.columns
    if config.volume_zscore_window and has_volume:
        columns["volume_z"] = indicators.rolling_zscore(np.log1p(bars["volume"]), config.volume_zscore_window)
        if config.signed_volume:
            columns["signed_volume"] = np.sign(close.diff()) * columns["volume_z"]
    if config.spread and "spread" in bars.columns:
        columns["spread_rel"] = bars["spread"] / close

    frame = pd.DataFrame(columns, index=bars.index)
    index = bars.index
    seconds_of_day = (index.hour * 3600 + index.minute * 60 + index.second).to_numpy()
    if config.time_of_day:
        day = indicators.cyclical(seconds_of_day / 86400.0, "time_of_day", config.calendar_harmonics)
        frame[day.columns] = day.to_numpy()
    if config.day_of_week:
        week = indicators.cyclical((index.day_of_week.to_numpy() + seconds_of_day / 86400.0) / 7.0, "day_of_week",
                                   config.calendar_harmonics)
        frame[week.columns] = week.to_numpy()
    return FeatureMatrix(values=frame.astype(np.float64), warmup=warmup_bars(config, has_volume))
