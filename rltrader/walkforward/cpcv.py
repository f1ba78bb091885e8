"""Combinatorial purged cross-validation: which rows each split trains, selects and tests on, and the paths.

The file's usable rows are cut into ``N`` consecutive groups. Each of the C(N, k) splits tests
on one choice of ``k`` groups and trains on the others, less the rows next to a test group:
``purge`` bars before it (their observations and rewards run into the test bars) and
``embargo`` bars after it (their observation windows and the serial dependence of returns
reach back into it). Model selection needs bars the model did not train on and that no
test touches: the split's validation is the tail of its latest training stretch, a gap of
``purge`` bars before it. So every bar a split tests on comes from a model that neither
trained nor selected on it (``tests/test_cpcv.py`` checks every bar of every path).

Each group is tested by C(N-1, k-1) splits; the j-th split (in split order) that tests group g
gives group g's bars to path j. So there are C(N, k)·k/N paths, each covering every group once
with returns that are all out of sample: a distribution of backtests, not one (López de Prado,
*Advances in Financial Machine Learning*, ch. 12; skfolio's ``CombinatorialPurgedCV``).

Rows count the usable (post-warm-up) rows of the file, as :mod:`rltrader.walkforward.folds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.errors import DataError
from rltrader.features.splits import GAP_CODE

TRAIN_CODE, VALIDATION_CODE, TEST_CODE = 0, 1, 2

Rows = tuple[int, int]


@dataclass(frozen=True)
class CpcvSplit:
    """One split's half-open row ranges into the file's usable rows.

    :param index: the split's number (0-based, in the order of ``itertools.combinations``)
    :param test_groups: the groups it tests on
    :param train: the training stretches (groups not tested, less purge, embargo and validation)
    :param validation: the rows that select its best model (tail of a training stretch)
    :param test: one range per test group, in group order
    :param groups: every group's rows (the plan's, the same for every split)
    """

    index: int
    test_groups: tuple[int, ...]
    train: tuple[Rows, ...]
    validation: Rows
    test: tuple[Rows, ...]
    groups: tuple[Rows, ...]

    @property
    def name(self) -> str:
        return f"split_{self.index:02d}"

    @property
    def first_row(self) -> int:
        return 0

    @property
    def last_row(self) -> int:
        """One past the split's last row: a split's data is the whole file (train and test interleave)."""
        return self.groups[-1][1]

    def codes(self) -> np.ndarray:
        """Per-row split code over the file's usable rows: 0 train, 1 validation, 2 test, -1 purged or embargoed."""
        codes = np.full(self.last_row, GAP_CODE, dtype=np.int8)
        for start, stop in self.train:
            codes[start:stop] = TRAIN_CODE
        codes[self.validation[0]:self.validation[1]] = VALIDATION_CODE
        for start, stop in self.test:
            codes[start:stop] = TEST_CODE
        return codes

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "test_groups": list(self.test_groups),
                "train": [list(rows) for rows in self.train], "validation": list(self.validation),
                "test": [list(rows) for rows in self.test], "groups": [list(rows) for rows in self.groups]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CpcvSplit:
        return cls(index=int(raw["index"]), test_groups=tuple(raw["test_groups"]),
                   train=tuple(tuple(rows) for rows in raw["train"]), validation=tuple(raw["validation"]),
                   test=tuple(tuple(rows) for rows in raw["test"]), groups=tuple(tuple(rows) for rows in raw["groups"]))


def group_rows(n_rows: int, groups: int) -> list[Rows]:
    """``groups`` consecutive ranges covering ``n_rows`` rows, sizes differing by at most one bar."""
    edges = np.linspace(0, n_rows, groups + 1).round().astype(int)
    return [(int(edges[g]), int(edges[g + 1])) for g in range(groups)]


def path_count(groups: int, test_groups: int) -> int:
    """C(N, k)·k/N = C(N-1, k-1): the full out-of-sample paths the splits assemble into."""
    return comb(groups - 1, test_groups - 1)


def path_assignment(splits: list[CpcvSplit], groups: int) -> list[list[int]]:
    """``paths[j][g]``: the split whose test bars of group ``g`` make up path ``j``.

    Group g is tested by C(N-1, k-1) splits; the j-th of them, in split order, feeds path j."""
    testers = [[split.index for split in splits if group in split.test_groups] for group in range(groups)]
    count = len(testers[0])
    return [[testers[group][path] for group in range(groups)] for path in range(count)]


def _without(stretches: list[Rows], removed: Rows) -> list[Rows]:
    start, stop = removed
    kept = []
    for a, b in stretches:
        for piece in ((a, min(b, start)), (max(a, stop), b)):
            if piece[1] > piece[0]:
                kept.append(piece)
    return kept


def plan_cpcv(n_rows: int, groups: int, test_groups: int, purge: int, embargo: int, validation_fraction: float,
              validation_bars: int | None, smallest: int, path: Path | None = None, warmup: int = 0
              ) -> list[CpcvSplit]:
    """Every split of a CPCV on ``n_rows`` usable rows; a :class:`DataError` saying what to change if they do not fit.

    :param n_rows: the file's usable rows
    :param groups: N, the consecutive groups
    :param test_groups: k, the groups each split tests on (1 <= k < N)
    :param purge: training bars dropped before each test group, and between training and validation
    :param embargo: training bars dropped after each test group
    :param validation_fraction: validation's share of a split's non-test bars (with ``validation_bars`` unset)
    :param validation_bars: validation bars of every split (None: the fraction)
    :param smallest: the fewest bars a training stretch, a validation or a test group may have
    :param path: the bar file, named in errors
    :param warmup: bars the features' warm-up dropped, counted in errors' bar counts
    """
    if not 1 <= test_groups < groups:
        raise DataError(path, f"walk_forward: test_groups={test_groups} with groups={groups}; need 1 <= test_groups "
                              "< groups (e.g. --groups 6 --test_groups 2)")
    bounds = group_rows(n_rows, groups)
    if min(stop - start for start, stop in bounds) < max(smallest, purge + embargo + smallest):
        raise DataError(path, f"walk_forward: {groups} groups of {n_rows + warmup:,} bars ({warmup} go to the feature "
                              f"warm-up) hold about {n_rows // groups:,} bars each, too few for {purge}-bar purges, "
                              f"{embargo}-bar embargoes and {smallest}-bar splits; lower --groups or use a longer file")
    splits = []
    for index, tested in enumerate(combinations(range(groups), test_groups)):
        stretches = [bounds[g] for g in range(groups) if g not in tested]
        merged: list[Rows] = []
        for start, stop in stretches:  # adjacent training groups form one stretch
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], stop)
            else:
                merged.append((start, stop))
        for group in tested:
            start, stop = bounds[group]
            merged = _without(merged, (start - purge, start))
            merged = _without(merged, (stop, stop + embargo))
        merged = [rows for rows in merged if rows[1] - rows[0] >= smallest]
        available = sum(stop - start for start, stop in merged)
        size = validation_bars or int(available * validation_fraction)
        size = max(size, smallest)
        # the latest stretch that holds the validation after a gap (stretches end at a purge or the file's end,
        # so no training bar follows a validation bar closely)
        holder = next((i for i in reversed(range(len(merged)))
                       if merged[i][1] - merged[i][0] >= size + purge + smallest), None)
        if holder is None:
            longest = max((stop - start for start, stop in merged), default=0)
            named = ", ".join(str(g + 1) for g in tested)
            raise DataError(path, f"walk_forward: split {index + 1} (test groups {named}) has at most {longest:,} bars "
                                  f"in a training stretch, too few for {size:,} validation bars after a {purge}-bar "
                                  "gap; lower --groups or walk_forward.validation_bars, or use a longer file")
        start, stop = merged[holder]
        validation = (stop - size, stop)
        train = (*merged[:holder], (start, stop - size - purge), *merged[holder + 1:])
        splits.append(CpcvSplit(index, tuple(tested), train, validation,
                                tuple(bounds[g] for g in tested), tuple(bounds)))
    return splits


__all__ = ["TEST_CODE", "TRAIN_CODE", "VALIDATION_CODE", "CpcvSplit", "group_rows", "path_assignment",
           "path_count", "plan_cpcv"]
