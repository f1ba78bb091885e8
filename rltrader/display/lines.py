"""The line a finished iteration prints (terminal, run logs): score, timing, ETA, timesteps saved, speedup."""

from __future__ import annotations

from collections.abc import Sequence

from rltrader.display.formatting import minutes, number, rate
from rltrader.records import IterationRecord, OriginalThroughput


def iteration_line(records: Sequence[IterationRecord], planned: int, metric: str, best_score: float | None,
                   speedup_so_far: float | None, original: OriginalThroughput | None = None) -> str:
    """The last record's line; ``speedup_so_far`` is None for the original method (it is the baseline).
    ``original``: the calibrated throughput the estimate divides by, named in the line as its basis."""
    last = records[-1]
    walls = [record.wall_seconds for record in records]
    average = sum(walls) / len(walls)
    saved = sum(record.timesteps_saved for record in records)
    parts = [
        f"Iteration {last.iteration + 1}/{planned} [{last.phase}] done:",
        f"{last.timesteps:,} timesteps in {minutes(last.wall_seconds)}",
        f"({rate(last.timesteps_per_second)}/s)" + (", early stop" if last.early_stopped else ""),
        f"| validation {metric} {number(last.validation_score)} (best {number(best_score)})",
        f"| avg iteration {minutes(average)}, ETA {minutes(average * (planned - len(records)))}",
        f"| timesteps saved {saved:,}",
    ]
    if speedup_so_far is not None:
        basis = f"est. vs {original.engine} at {rate(original.timesteps_per_second)} ts/s here" if original else "est."
        parts.append(f"| speedup so far ~{speedup_so_far:.1f}x ({basis})")
    return " ".join(parts)


__all__ = ["iteration_line"]
