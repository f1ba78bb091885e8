"""A run's validation looks as a curve: the best score so far at each look, with the timesteps and seconds
spent to reach it (how long a fold or split took to reach a score)."""

from __future__ import annotations

from rltrader.records import LookPoint
from rltrader.training.run_state import RunState


def validation_curve(state: RunState) -> list[LookPoint]:
    """Every validation look of the run in order, with the run's timesteps and seconds so far."""
    points, timesteps, seconds, best = [], 0, 0.0, float("-inf")
    for record in state.iterations:
        for look in record.validations:
            best = max(best, look.score)
            points.append(LookPoint(timesteps=timesteps + look.timesteps, seconds=round(seconds + look.wall_seconds, 3),
                                    best_score=best))
        timesteps += record.timesteps
        seconds += record.wall_seconds
    return points


__all__ = ["validation_curve"]
