"""Where each walk-forward fold trains, validates and tests: row ranges, planned once per file.

A fold is today's chronological split applied to a window of the file: train, a gap,
validation, a gap, test. Consecutive folds move forward by one test window, so the test
windows follow each other without overlap and end at the file's last bar (the most
recent period is always tested), and their equity curves stitch into one out-of-sample
curve. ``rolling`` keeps every train window the same length; ``anchored`` starts every
one at the first usable bar, so later folds train on more history.

Rows count the usable (post-warm-up) rows of the file, as :mod:`rltrader.features.splits`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rltrader.config import SplitConfig, WalkForwardConfig
from rltrader.errors import DataError
from rltrader.features.splits import SplitRanges


@dataclass(frozen=True)
class Fold:
    """One fold's half-open row ranges ``[start, end)`` into the file's usable rows."""

    index: int
    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]
    gap: int

    @property
    def first_row(self) -> int:
        return self.train[0]

    @property
    def last_row(self) -> int:
        """One past the fold's last row (its test end)."""
        return self.test[1]

    @property
    def name(self) -> str:
        return f"fold_{self.index:02d}"

    def local_ranges(self) -> SplitRanges:
        """The fold's splits as rows of its own slice (what the fold's parquet holds)."""
        shift = self.first_row
        return SplitRanges(train=(self.train[0] - shift, self.train[1] - shift),
                           validation=(self.validation[0] - shift, self.validation[1] - shift),
                           test=(self.test[0] - shift, self.test[1] - shift), gap=self.gap)

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class FoldSizes:
    train: int
    validation: int
    test: int
    folds: int


def fold_sizes(n_rows: int, walk: WalkForwardConfig, splits: SplitConfig, gap: int) -> FoldSizes:
    """Bars per split and fold count: the configured sizes, or ``folds`` windows fitted to the file.

    Fitted: the first fold is split as ``splits:`` says (70/15/15 by default) and every
    later fold adds one test window, so ``first fold + (folds - 1) test windows`` fills the file."""
    if walk.test_bars is not None and walk.train_bars is not None:
        validation = walk.validation_bars or walk.test_bars
        room = n_rows - walk.train_bars - validation - 2 * gap
        folds = walk.folds if walk.folds is not None else max(room // walk.test_bars, 0)
        return FoldSizes(walk.train_bars, validation, walk.test_bars, folds)
    folds = int(walk.folds or 1)
    first_fold = (n_rows - 2 * gap) / (1.0 + splits.test * (folds - 1))
    train = int(first_fold * splits.train)
    validation = walk.validation_bars or int(first_fold * splits.validation)
    test = (n_rows - 2 * gap - train - validation) // folds
    return FoldSizes(train, validation, test, folds)


def plan_folds(n_rows: int, walk: WalkForwardConfig, splits: SplitConfig, gap: int, window: int,
               path: Path | None = None, warmup: int = 0) -> list[Fold]:
    """The folds of a file with ``n_rows`` usable rows; a :class:`DataError` saying what to change if they
    do not fit."""
    sizes = fold_sizes(n_rows, walk, splits, gap)
    smallest = max(splits.min_bars_per_split, window + 1)
    needed = sizes.train + sizes.validation + 2 * gap + sizes.folds * sizes.test
    where = (f"walk_forward: {sizes.folds} folds of train {sizes.train:,} + validation {sizes.validation:,} + "
             f"test {sizes.test:,} bars ({gap}-bar gaps)")
    if sizes.folds < 1 or needed > n_rows:
        raise DataError(path, f"{where} need {needed + warmup:,} bars, the file has {n_rows + warmup:,} "
                              f"({warmup} go to the feature warm-up); lower walk_forward.folds or the bar counts, "
                              "or use a longer file")
    if min(sizes.train, sizes.validation, sizes.test) < smallest:
        raise DataError(path, f"{where}: every split needs at least {smallest} bars "
                              "(splits.min_bars_per_split); lower walk_forward.folds or set train_bars and test_bars")
    start = n_rows - needed  # end-aligned: the last test window ends at the last bar
    folds = []
    for index in range(sizes.folds):
        offset = start + index * sizes.test
        train = (0 if walk.scheme == "anchored" else offset, offset + sizes.train)
        validation = (train[1] + gap, train[1] + gap + sizes.validation)
        test = (validation[1] + gap, validation[1] + gap + sizes.test)
        folds.append(Fold(index, train, validation, test, gap))
    return folds


__all__ = ["Fold", "FoldSizes", "fold_sizes", "plan_folds"]
