"""Which fold x seed runs may start now, and how long the rest will take.

Cold folds are independent: every run is ready at once, and the task runner fans them
out. Warm-started folds form one chain per seed: fold k+1 of a seed waits for fold k of
that seed (it starts from that run's best model), while the seeds' chains run side by
side. Runs start in fold order, so the stitched curve fills from the left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rltrader.records import FoldOutcome
from rltrader.walkforward.runs import FoldRunSpec

RunKey = tuple[int, int]  # (fold, seed)


@dataclass
class FoldQueue:
    """The runs of one walk-forward: waiting, running, finished.

    :param specs: every fold x seed run by (fold, seed)
    :param warm: folds are warm-started (fold k+1 of a seed waits for fold k of that seed)
    """

    specs: dict[RunKey, FoldRunSpec]
    warm: bool
    finished: dict[RunKey, FoldOutcome] = field(default_factory=dict)
    running: set[RunKey] = field(default_factory=set)
    seconds_per_run: list[float] = field(default_factory=list)  # runs trained by this process, not read back
    started_at: dict[RunKey, float] = field(default_factory=dict)

    @property
    def planned(self) -> int:
        return len(self.specs)

    @property
    def done(self) -> bool:
        return len(self.finished) == self.planned

    def waiting(self) -> list[RunKey]:
        return sorted(key for key in self.specs if key not in self.finished and key not in self.running)

    def ready(self) -> list[RunKey]:
        """Runs that may start: every waiting one when cold; with warm folds, those whose previous fold is done."""
        return [key for key in self.waiting()
                if not self.warm or key[0] == 0 or (key[0] - 1, key[1]) in self.finished]

    def start(self, key: RunKey) -> FoldRunSpec:
        self.running.add(key)
        self.started_at[key] = time.perf_counter()
        return self.specs[key]

    def finish(self, key: RunKey, outcome: FoldOutcome, trained_here: bool = True) -> None:
        self.running.discard(key)
        self.finished[key] = outcome
        if trained_here and key in self.started_at:
            self.seconds_per_run.append(time.perf_counter() - self.started_at.pop(key))

    def eta_seconds(self, workers: int) -> float | None:
        """Remaining runs x the mean wall time of a run so far / the runs going at once (None before the first)."""
        if not self.seconds_per_run:
            return None
        remaining = self.planned - len(self.finished)
        if self.warm:  # chains: at most one run per seed at a time
            workers = min(workers, len({seed for _, seed in self.specs}))
        return remaining * sum(self.seconds_per_run) / len(self.seconds_per_run) / max(1, workers)


__all__ = ["FoldQueue", "RunKey"]
