"""Chronological train / validation / test splits with a gap between them.

Time series must not be shuffled: the model is selected on data after its training data
and judged on data after that. The gap (at least one observation window) keeps the first
observation of a split from being made of bars that another split trades on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rltrader.config import SplitConfig
from rltrader.errors import DataError

SPLIT_NAMES = ("train", "validation", "test")
GAP_CODE = -1


@dataclass(frozen=True)
class SplitRanges:
    """Half-open row ranges ``[start, end)`` into the usable (post-warm-up) rows."""

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]
    gap: int

    def sizes(self) -> dict[str, int]:
        return {name: end - start for name, (start, end) in self.ranges().items()}

    def ranges(self) -> dict[str, tuple[int, int]]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}

    def codes(self, n_rows: int) -> np.ndarray:
        """Per-row split code: 0 train, 1 validation, 2 test, -1 gap."""
        codes = np.full(n_rows, GAP_CODE, dtype=np.int8)
        for code, (start, end) in enumerate(self.ranges().values()):
            codes[start:end] = code
        return codes

    def to_dict(self) -> dict:
        return asdict(self)


def minimum_rows(config: SplitConfig, gap: int, window: int) -> int:
    """Usable rows needed so that every split holds ``max(min_bars_per_split, window + 1)``."""
    per_split = max(config.min_bars_per_split, window + 1)
    smallest_fraction = min(config.train, config.validation, config.test)
    return 2 * gap + math.ceil(per_split / smallest_fraction) + 3


def chronological_splits(
    n_rows: int, config: SplitConfig, gap: int, window: int, path: Path | None = None, warmup: int = 0
) -> SplitRanges:
    """Split ``n_rows`` usable rows in time order; too few rows is a :class:`DataError`."""
    needed = minimum_rows(config, gap, window)
    if n_rows < needed:
        raise DataError(
            path,
            f"too few rows: {n_rows + warmup} bars leave {n_rows} after the {warmup}-bar feature "
            f"warm-up, but splits {config.train:g}/{config.validation:g}/{config.test:g} with "
            f"{gap}-bar gaps (env.window_size {window}) need at least {needed + warmup} bars for "
            f"{max(config.min_bars_per_split, window + 1)} per split; use a longer file or lower "
            "splits.min_bars_per_split / env.window_size",
        )
    available = n_rows - 2 * gap
    n_train = int(available * config.train)
    n_validation = int(available * config.validation)
    validation_start = n_train + gap
    test_start = validation_start + n_validation + gap
    return SplitRanges(
        train=(0, n_train),
        validation=(validation_start, validation_start + n_validation),
        test=(test_start, n_rows),
        gap=gap,
    )
