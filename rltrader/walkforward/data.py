"""Each fold's training data: features computed once per file, normalized per fold on its own train rows.

The raw features are causal, so they are computed once over the whole file and cached
(``optimizations.cache_environments``); what differs between folds is which rows they
hold, how those are split and the normalization, which is fitted on the fold's training
rows only: bars after a fold's training window cannot reach its statistics. Every fold is
written as an ordinary prepared file (a :class:`~rltrader.features.preparation.PreparedData`, its
``metadata["fold"]`` saying which rows of the file it is), so the trainer, the evaluator
and the report run on it unchanged.
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
from rltrader.data import load_bars
from rltrader.errors import DataError
from rltrader.features import FEATURE_CODE_VERSION
from rltrader.features.cache import FeatureStore, cache_key, file_digest
from rltrader.features.normalization import NormalizationStats, fit_normalization, fixed_scales
from rltrader.features.pipeline import memory_bars
from rltrader.features.preparation import (
    PreparedData,
    bar_summary,
    model_frame,
    source_summary,
    split_summary,
    usable_features,
)
from rltrader.walkforward.cpcv import TRAIN_CODE, CpcvSplit, plan_cpcv
from rltrader.walkforward.folds import Fold, plan_folds

logger = logging.getLogger(__name__)

RAW_KIND = "walk-forward raw features"

Plan = Fold | CpcvSplit  # a walk-forward's unit: one fold, or one CPCV split


def raw_settings(config: Config) -> dict[str, Any]:
    """What shapes the raw feature file: how the bars are read and which features (not splits, not windows)."""
    return {"kind": RAW_KIND, "data": config.data.model_dump(mode="json"),
            "features": config.features.model_dump(mode="json", exclude={"clip"})}


def raw_key(data_path: Path, config: Config) -> str:
    """Cache key of the file's raw features: its content, how it is read, which features, the code
    (not the splits or the observation window, which only the folds' files depend on)."""
    if not data_path.is_file():
        raise DataError(data_path, "file not found; check --data_path")
    return cache_key(file_digest(data_path), raw_settings(config), FEATURE_CODE_VERSION)


def compute_raw_features(data_path: Path, config: Config, key: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Timestamps, bars and raw features of every usable row, and what describes them (nothing written)."""
    started = time.perf_counter()
    loaded = load_bars(data_path, config.data)
    usable, warmup = usable_features(loaded, config)
    bars = loaded.bars.iloc[warmup:]
    frame = pd.DataFrame({"timestamp": bars.index}).join(bars.reset_index(drop=True))
    frame[list(usable.columns)] = usable.to_numpy()
    metadata = {"cache_key": key, "feature_code_version": FEATURE_CODE_VERSION,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": source_summary(data_path, loaded), "bars": bar_summary(loaded), "warmup": warmup,
                "bar_columns": list(bars.columns), "feature_columns": list(usable.columns),
                "compute_seconds": round(time.perf_counter() - started, 3), "settings": raw_settings(config)}
    return frame, metadata


def plan_splits(n_rows: int, config: Config, path: Path | None = None, warmup: int = 0, memory: int = 0) -> list[Plan]:
    """The walk-forward's plan for ``n_rows`` usable rows: consecutive folds, or every CPCV split
    (``walk_forward.scheme: cpcv``); a :class:`DataError` saying what to change if it does not fit.

    :param memory: bars a price stays in the features (:func:`~rltrader.features.pipeline.memory_bars`), the
        CPCV embargo's default"""
    walk = config.walk_forward
    if walk.scheme != "cpcv":
        return list(plan_folds(n_rows, walk, config.splits, config.gap_bars, config.env.window_size, path, warmup))
    splits, window = config.splits, config.env.window_size
    purge = config.gap_bars if walk.purge_bars is None else max(walk.purge_bars, window)
    # the embargo defaults to the features' memory: no training bar's features carry a tested bar's price
    # (beyond 1e-4 of its weight, in the exponential averages)
    embargo = max(config.gap_bars, warmup, memory) if walk.embargo_bars is None else max(walk.embargo_bars, window)
    return list(plan_cpcv(n_rows, walk.groups, walk.test_groups, purge, embargo,
                          splits.validation / (splits.train + splits.validation), walk.validation_bars,
                          max(splits.min_bars_per_split, window + 1), path, warmup))


def plan_codes(plan: Plan) -> np.ndarray:
    """Per row of the plan's slice of the file: 0 train, 1 validation, 2 test, -1 gap (purged, embargoed)."""
    if isinstance(plan, CpcvSplit):
        return plan.codes()
    return plan.local_ranges().codes(plan.last_row - plan.first_row)


def fold_frame(raw: pd.DataFrame, raw_meta: dict[str, Any], fold: Plan,
               clip: float) -> tuple[pd.DataFrame, NormalizationStats]:
    """The fold's rows as training reads them, normalized by statistics of its train rows only."""
    rows = raw.iloc[fold.first_row:fold.last_row]
    features = rows[raw_meta["feature_columns"]].reset_index(drop=True)
    codes = plan_codes(fold)
    stats = fit_normalization(features[codes == TRAIN_CODE], clip, fixed_scales(features.columns))
    bars = rows.set_index("timestamp")[raw_meta["bar_columns"]]
    return model_frame(bars, stats.apply(features), codes), stats


def plan_split_summary(plan: Plan, timestamps: pd.DatetimeIndex) -> dict[str, Any]:
    """What the trainer and the report read of the plan's splits (rows, bars, dates).

    A CPCV split's train and test are several stretches: ``rows`` spans them (the market's split
    codes say which rows inside belong), ``stretches`` lists them and ``bars`` counts their bars."""
    if not isinstance(plan, CpcvSplit):
        return split_summary(plan.local_ranges(), timestamps, 0)
    summary: dict[str, Any] = {"gap_bars": None, "warmup_bars_dropped": 0, "scheme": "cpcv",
                               "test_groups": list(plan.test_groups)}
    for name, stretches in (("train", plan.train), ("validation", (plan.validation,)), ("test", plan.test)):
        start, end = stretches[0][0], stretches[-1][1]
        summary[name] = {"rows": [start, end], "bars": sum(b - a for a, b in stretches),
                         "stretches": [list(rows) for rows in stretches],
                         "start": timestamps[start].isoformat(sep=" "), "end": timestamps[end - 1].isoformat(sep=" ")}
    return summary


@dataclass(frozen=True)
class PreparedFolds:
    """A walk-forward's plan: every fold's row ranges and its prepared data (paths and metadata).

    :param folds: the folds (or CPCV splits) in order
    :param prepared: each fold's prepared data, normalized on that fold's training rows only
    """

    folds: list[Plan]
    prepared: list[PreparedData]

    @property
    def data_sha256(self) -> str:
        """The bar file's content hash: what the walk-forward's results belong to."""
        return str(self.prepared[0].metadata["source"]["sha256"])

    @property
    def bars_per_year(self) -> float:
        """Bars in a year of this file's calendar (annualizes the stitched Sharpe)."""
        return float(self.prepared[0].metadata["bars"]["bars_per_year"])


def prepare_folds(data_path: str | Path, config: Config, use_cache: bool | None = None) -> tuple[list[Plan],
                                                                                                 list[PreparedData]]:
    """Plan the folds (or CPCV splits) of ``data_path`` and write each one's prepared file; nothing is
    written for a bad file.

    :param data_path: the bar file
    :param config: the walk-forward's config (``walk_forward:`` plans the folds)
    :param use_cache: reuse cached files (default ``optimizations.cache_environments``); with it off,
        every file is computed again (and still written: training reads from disk)
    """
    path = Path(data_path)
    use_cache = config.optimizations.cache_environments if use_cache is None else use_cache
    store = FeatureStore(config.cache.dir)
    key = raw_key(path, config)
    cached = store.lookup(key) if use_cache else None
    if cached is not None:
        logger.info("Cache hit for the raw features of %s (%s)", path, key)
        raw, raw_meta = pd.read_parquet(cached.parquet_path), cached.metadata
    else:
        raw, raw_meta = compute_raw_features(path, config, key)
    folds = plan_splits(len(raw), config, path, int(raw_meta["warmup"]),
                        memory_bars(config.features, "volume" in raw_meta["bar_columns"]))
    # a plan that does not fit failed there, before anything is written
    if cached is None:
        raw_meta = store.write(key, raw, raw_meta).metadata
    prepared = []
    for fold in folds:
        key = cache_key(raw_meta["cache_key"], {"fold": fold.to_dict(), "clip": config.features.clip},
                        FEATURE_CODE_VERSION)
        if use_cache and (entry := store.lookup(key)) is not None:
            prepared.append(PreparedData(entry.parquet_path, entry.metadata, cache_hit=True))
            continue
        frame, stats = fold_frame(raw, raw_meta, fold, config.features.clip)
        timestamps = pd.DatetimeIndex(frame["timestamp"])
        metadata = {
            "cache_key": key, "feature_code_version": FEATURE_CODE_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": raw_meta["source"],
            "bars": {**raw_meta["bars"], "count": len(frame), "start": str(timestamps[0]),
                     "end": str(timestamps[-1])},
            "features": {"columns": list(stats.mean), "normalization": stats.to_dict()},
            "splits": plan_split_summary(fold, timestamps),
            "parquet": {"rows": len(frame)},
            "fold": fold.to_dict(),
            "settings": {"raw": raw_meta["settings"], "fold": fold.to_dict(), "clip": config.features.clip},
        }
        entry = store.write(key, frame, metadata)
        prepared.append(PreparedData(entry.parquet_path, entry.metadata, cache_hit=False))
    return folds, prepared


__all__ = ["Plan", "PreparedFolds", "compute_raw_features", "fold_frame", "plan_codes", "plan_split_summary",
           "plan_splits", "prepare_folds", "raw_key", "raw_settings"]
