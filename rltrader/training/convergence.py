"""Early stopping with convergence detection.

Unlike SB3's ``StopTrainingOnNoModelImprovement``, which forgets its best score at every
``learn()`` call and counts any strict improvement, this tracker lives for the whole run
(it is saved in every checkpoint) and only counts an improvement larger than
``threshold``. Its counter persists across iterations too: once training has converged,
each later iteration gets one evaluation to beat the best before it stops, instead of
re-earning its full patience.

Patience counts on a *smoothed* score: an exponential average of the looks (``smoothing``
is the newest look's weight). Successive looks score models a few thousand timesteps
apart on the same validation window, and their Sharpe ratios jump by several units from
one look to the next (a two-week M15 window's Sharpe has a standard error near 5): on
raw looks, one lucky spike early sets a best that noise then fails to beat (the
iteration stops while still learning), and one lucky uptick resets the counter (it
trains on past convergence). The average moves only when the model keeps scoring
better. The best *model* is still the best raw look, as before.
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
    smoothing: float = 1.0
    best_score: float = -math.inf
    smoothed_score: float | None = None
    best_smoothed_score: float = -math.inf
    evaluations_without_improvement: int = 0

    def update(self, score: float) -> bool:
        """Record one evaluation; return True when it is a new best (the model worth keeping).

        Any higher score is a new best, but only a smoothed score that beats the best smoothed
        score so far by more than ``threshold`` resets the patience counter: noise and
        creeping gains mean convergence.
        """
        first = self.smoothed_score is None
        self.smoothed_score = score if first else self.smoothing * score + (1.0 - self.smoothing) * self.smoothed_score
        significant = first or self.smoothed_score > self.best_smoothed_score + self.threshold
        self.evaluations_without_improvement = 0 if significant else self.evaluations_without_improvement + 1
        self.best_smoothed_score = max(self.best_smoothed_score, self.smoothed_score)
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
        for key in ("best_score", "best_smoothed_score"):
            payload[key] = None if math.isinf(payload[key]) else payload[key]
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any], patience: int, threshold: float,
                  smoothing: float = 1.0) -> ConvergenceTracker:
        """Restore the saved scores and counter under the current patience/threshold/smoothing settings
        (a checkpoint from before smoothing existed resumes with its best score as the smoothed one)."""
        best = payload.get("best_score")
        best_score = -math.inf if best is None else float(best)
        smoothed_best = payload.get("best_smoothed_score", best)
        return cls(patience, threshold, smoothing, best_score, payload.get("smoothed_score", best),
                   -math.inf if smoothed_best is None else float(smoothed_best),
                   int(payload.get("evaluations_without_improvement", 0)))
