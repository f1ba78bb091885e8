"""The first stage of the pipeline: bar file -> validated bars -> normalized features on disk.

``preprocess`` is what the Prefect task wraps. It is cheap to call again: with the
cache on, a second call for the same file content and settings costs one file hash.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.config import Config
from rltrader.data import LoadedBars, load_bars
from rltrader.data.spread import require_spread
from rltrader.errors import DataError
from rltrader.features import FEATURE_CODE_VERSION, compute_features
from rltrader.features.cache import FeatureStore, cache_key, file_digest
from rltrader.features.normalization import NormalizationStats, fit_normalization, fixed_scales
from rltrader.features.splits import SPLIT_NAMES, SplitRanges, chronological_splits

logger = logging.getLogger(__name__)

SPLIT_COLUMN = "split"
PRICE_AND_VOLUME = ("open", "high", "low", "close", "volume", "spread")


@dataclass(frozen=True)
class PreparedData:
    """Where the preprocessed bars and features are, and everything known about them.

    This small record (paths and metadata, no arrays) is what tasks pass around.
    """

    parquet_path: Path
    metadata: dict[str, Any]
    cache_hit: bool

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["features"]["columns"])

    @property
    def normalization(self) -> NormalizationStats:
        return NormalizationStats.from_dict(self.metadata["features"]["normalization"])

    def split_rows(self, name: str) -> tuple[int, int]:
        start, end = self.metadata["splits"][name]["rows"]
        return int(start), int(end)

    def load(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Read the parquet (timestamp, prices, split code, normalized float32 features)."""
        return pd.read_parquet(self.parquet_path, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {"parquet_path": str(self.parquet_path), "metadata": self.metadata, "cache_hit": self.cache_hit}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PreparedData:
        return cls(Path(raw["parquet_path"]), raw["metadata"], bool(raw["cache_hit"]))


def cache_settings(config: Config) -> dict[str, Any]:
    """The configuration that shapes the cached file; anything else must not change the key."""
    return {
        "data": config.data.model_dump(mode="json"),
        "features": config.features.model_dump(mode="json"),
        "splits": config.splits.model_dump(mode="json"),
        "gap_bars": config.gap_bars,
        "window_size": config.env.window_size,
    }


def preprocessing_key(data_path: str | Path, config: Config) -> str:
    """Cache key of ``data_path`` under ``config``: content hash + settings + code version."""
    path = Path(data_path)
    if not path.is_file():
        raise DataError(path, "file not found; check --data_path")
    return cache_key(file_digest(path), cache_settings(config), FEATURE_CODE_VERSION)


def _iso(stamp: pd.Timestamp) -> str:
    return stamp.isoformat(sep=" ")


def bar_summary(loaded: LoadedBars) -> dict[str, Any]:
    """What the report says about the bars: count, span, interval, gaps, repairs."""
    gaps = loaded.gaps
    bars = loaded.bars
    return {
        "count": len(bars),
        "start": _iso(bars.index[0]),
        "end": _iso(bars.index[-1]),
        "interval": str(loaded.bar_interval),
        "interval_seconds": loaded.bar_interval.total_seconds(),
        "bars_per_year": _bars_per_year(bars.index),
        "gaps": len(gaps),
        "largest_gap": str(gaps.max()) if len(gaps) else None,
        "repairs": list(loaded.repairs),
        "largest_move": loaded.largest_move,
        "columns": list(bars.columns),
    }


def source_summary(path: Path, loaded: LoadedBars) -> dict[str, Any]:
    """Which file, which bytes (its SHA-256 identifies the data a run belongs to), how it was read."""
    return {
        "path": str(path),
        "sha256": file_digest(path),
        "size_bytes": path.stat().st_size,
        "format": loaded.source_format,
        "timestamps": loaded.time_description,
        "spread": loaded.spread_description,
    }


def _bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars actually traded per calendar year: what annualization must use, not 252."""
    span_years = (index[-1] - index[0]).total_seconds() / (365.25 * 86400)
    return float((len(index) - 1) / span_years) if span_years > 0 else float("nan")


def split_summary(ranges: SplitRanges, timestamps: pd.DatetimeIndex, warmup: int) -> dict[str, Any]:
    """Rows, bar counts and dates of each split, as the report and the trainer read them."""
    summary: dict[str, Any] = {"gap_bars": ranges.gap, "warmup_bars_dropped": warmup}
    for name, (start, end) in ranges.ranges().items():
        summary[name] = {
            "rows": [start, end],
            "bars": end - start,
            "start": _iso(timestamps[start]),
            "end": _iso(timestamps[end - 1]),
        }
    return summary


def usable_features(loaded: LoadedBars, config: Config) -> tuple[pd.DataFrame, int]:
    """Raw (unnormalized) features from the first bar where every one is defined, and the warm-up dropped."""
    features = compute_features(loaded.bars, config.features)
    usable = features.values.iloc[features.warmup:]
    finite = np.isfinite(usable.to_numpy())
    if not finite.all():
        bad_column = usable.columns[~finite.all(axis=0)][0]
        raise DataError(loaded.source, f"feature {bad_column!r} is not finite after the warm-up; check the bars")
    return usable, features.warmup


def fit_on_train(usable: pd.DataFrame, ranges: SplitRanges, clip: float) -> NormalizationStats:
    """Normalization fitted on the training rows of ``ranges`` only; sin/cos encodings and move patterns keep
    a fixed scale (:func:`~rltrader.features.normalization.fixed_scales`)."""
    train_start, train_end = ranges.train
    return fit_normalization(usable.iloc[train_start:train_end], clip, fixed_scales(usable.columns))


def model_frame(bars: pd.DataFrame, normalized: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """What training reads: timestamp, prices (and volume, spread), split code, normalized features."""
    frame = pd.DataFrame({"timestamp": bars.index})
    for column in PRICE_AND_VOLUME:
        if column in bars.columns:
            frame[column] = bars[column].to_numpy()
    frame[SPLIT_COLUMN] = codes
    frame[normalized.columns] = normalized.to_numpy()
    return frame


def build_features_frame(
    loaded: LoadedBars, config: Config
) -> tuple[pd.DataFrame, NormalizationStats, SplitRanges, int]:
    """Features, splits and train-only normalization for validated bars."""
    usable, warmup = usable_features(loaded, config)
    ranges = chronological_splits(
        len(usable), config.splits, config.gap_bars, config.env.window_size, loaded.source, warmup
    )
    stats = fit_on_train(usable, ranges, config.features.clip)
    frame = model_frame(loaded.bars.iloc[warmup:], stats.apply(usable), ranges.codes(len(usable)))
    return frame, stats, ranges, warmup


def check_bars(data_path: str | Path, config: Config) -> None:
    """Refuse a bar file that :func:`preprocess` would refuse, reading it but writing nothing.

    Commands call it before they start a Prefect server or import torch, so a malformed file costs
    a second, not the server's start-up. A file already in the cache passed these checks when it
    was cached (its key is its content); only the spread rule, which depends on the config, is asked again."""
    path = Path(data_path)
    entry = FeatureStore(config.cache.dir).lookup(preprocessing_key(path, config))
    if entry is not None:
        require_spread(path, entry.metadata["bars"].get("columns", ["spread"]), config)
        return
    require_spread(path, load_bars(path, config.data).bars.columns, config)


def preprocess(data_path: str | Path, config: Config | None = None, use_cache: bool | None = None) -> PreparedData:
    """Load, validate, featurize, split and normalize ``data_path``, reusing the cache.

    ``use_cache`` defaults to ``config.optimizations.cache_environments``. With the cache off the result is
    still written (training reads it from disk) but never reused. Nothing is written when
    the input is invalid.

    :param data_path: the bar file (CSV/TSV export or parquet)
    :param config: how to read, featurize and split it (default: the default config)
    :param use_cache: reuse a cached feature file of the same content and settings
    """
    config = config or Config()
    use_cache = config.optimizations.cache_environments if use_cache is None else use_cache
    store = FeatureStore(config.cache.dir)
    path = Path(data_path)
    started = time.perf_counter()
    key = preprocessing_key(path, config)
    if use_cache and (entry := store.lookup(key)) is not None:
        require_spread(path, entry.metadata["bars"].get("columns", ["spread"]), config)
        logger.info("Cache hit for %s (%s)", path, key)
        return PreparedData(entry.parquet_path, entry.metadata, cache_hit=True)

    logger.info("Loading bars from %s", path)
    loaded = load_bars(path, config.data)
    require_spread(path, loaded.bars.columns, config)  # before anything is written
    logger.info(
        "Loaded %d bars (%s) in %.1fs; computing features", len(loaded.bars), loaded.source_format,
        time.perf_counter() - started,
    )
    frame, stats, ranges, warmup = build_features_frame(loaded, config)
    metadata: dict[str, Any] = {
        "cache_key": key,
        "feature_code_version": FEATURE_CODE_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source_summary(path, loaded),
        "bars": bar_summary(loaded),
        "features": {"columns": list(stats.mean), "normalization": stats.to_dict()},
        "splits": split_summary(ranges, pd.DatetimeIndex(frame["timestamp"]), warmup),
        "parquet": {"rows": len(frame)},
        "compute_seconds": round(time.perf_counter() - started, 3),
        "settings": cache_settings(config),
    }
    logger.info("Writing %d rows x %d features to %s", len(frame), len(stats.mean), store.entry_dir(key))
    entry = store.write(key, frame, metadata)
    logger.info("Preprocessed %s in %.1fs", path, time.perf_counter() - started)
    return PreparedData(entry.parquet_path, entry.metadata, cache_hit=False)


__all__ = ["PreparedData", "SPLIT_NAMES", "check_bars", "preprocess", "preprocessing_key"]
