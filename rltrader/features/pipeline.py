"""Turn canonical bars into the feature matrix the agent observes: the declared features, run over the file.

The batch is a scan of the step: :func:`compute_features` advances the compiled program
(:mod:`rltrader.features.program`) over every bar of the file from an empty state, with the interpreter
the live stream runs on each new bar. Nothing here computes a feature by other means.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rltrader.config import FeatureConfig
from rltrader.data.bar_arrays import bar_arrays
from rltrader.features.definitions import feature_program
from rltrader.features.stream import FeatureSteps

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
# e.g. a numba upgrade that changes results) plus the hash of the feature code.
FEATURE_CODE_VERSION = f"2+{source_digest()}"


@dataclass(frozen=True)
class FeatureMatrix:
    """Raw (unnormalized) features aligned with the bars; the first ``warmup`` rows are unusable."""

    values: pd.DataFrame
    warmup: int


EMA_TOLERANCE = 1e-12
"""How far an exponential average started at the first bar of a history may still be from one started
at the first bar of the training file, relative to its inputs: a bundle's warm-up covers that many bars."""


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
    if config.move_patterns:
        lookbacks.append(config.move_patterns)
    if config.volume_zscore_window and has_volume:
        lookbacks.append(config.volume_zscore_window + config.signed_volume_lags)
    return max(lookbacks)


def ema_warmup_bars(features: FeatureConfig, tolerance: float = EMA_TOLERANCE) -> int:
    """Bars after which every exponential average of ``features`` has forgotten its start to ``tolerance``.

    An average with weight ``alpha`` on the new value keeps ``(1 - alpha) ** n`` of its start after
    ``n`` bars; Wilder's ATR and RSI use ``alpha = 1 / period``, MACD's ``2 / (span + 1)``."""
    alphas = [1.0 / period for period in (features.atr_period, features.rsi_period) if period]
    if features.macd:
        alphas += [2.0 / (span + 1.0) for span in (features.macd.fast, features.macd.slow, features.macd.signal)]
    if not alphas:
        return 0
    return max(math.ceil(math.log(tolerance) / math.log(1.0 - alpha)) for alpha in alphas)


def memory_bars(config: FeatureConfig, has_volume: bool, tolerance: float = 1e-4) -> int:
    """Bars after which one bar's price weighs less than ``tolerance`` in every feature.

    Rolling features forget a bar after their window (the warm-up); exponential averages never quite do.
    What a combinatorial purged cross-validation embargoes after a test group, so no training bar's
    features carry a tested bar's price beyond ``tolerance`` of its weight."""
    return max(warmup_bars(config, has_volume), ema_warmup_bars(config, tolerance))


def compute_features(bars: pd.DataFrame, config: FeatureConfig) -> FeatureMatrix:
    """Every configured feature over ``bars`` (all causal: see :mod:`rltrader.features.definitions`)."""
    program = feature_program(config, "volume" in bars.columns, "spread" in bars.columns)
    raw = FeatureSteps(program).advance(bar_arrays(bars).fields())
    frame = pd.DataFrame(raw, index=bars.index, columns=list(program.names))
    return FeatureMatrix(values=frame.astype(np.float64), warmup=warmup_bars(config, "volume" in bars.columns))
