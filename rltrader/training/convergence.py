"""Early stopping with convergence detection.

Unlike SB3's ``StopTrainingOnNoModelImprovement``, which forgets its best score at every
``learn()`` call and counts any strict improvement, this tracker lives for the whole run
(it is saved in every checkpoint) and only counts an improvement larger than
``threshold``. Its counter persists across iterations too: once training has converged,
each later iteration gets one evaluation to beat the best before it stops, instead of
re-earning its full patience.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ConvergenceTracker:
    """Best validation score so far and evaluations since it last improved."""

    patience: int
    threshold: float
    best_score: float = -math.inf
    evaluations_without_improvement: int = 0

    def update(self, score: float) -> bool:
        """Record one evaluation; return True when it is a new best (the model worth keeping).

        Any higher score is a new best, but only one that beats the previous best by more
        than ``threshold`` resets the patience counter: creeping gains mean convergence.
        """
        first = math.isinf(self.best_score)
        significant = first or score > self.best_score + self.threshold
        self.evaluations_without_improvement = 0 if significant else self.evaluations_without_improvement + 1
        if score > self.best_score:
            self.best_score = score
            return True
        return False

    @property
    def converged(self) -> bool:
        """True when patience is exhausted (never with patience 0: early stopping off)."""
        return self.patience > 0 and self.evaluations_without_improvement >= self.patience

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["best_score"] = None if math.isinf(self.best_score) else self.best_score
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any], patience: int, threshold: float) -> ConvergenceTracker:
        """Restore the saved score and counter under the current patience/threshold settings."""
        best = payload.get("best_score")
        return cls(patience, threshold, -math.inf if best is None else float(best),
                   int(payload.get("evaluations_without_improvement", 0)))
