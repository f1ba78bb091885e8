"""What a run adds up to, ``optimization_summary.json``: a pure function of the run state and
the best model's final scores (the trainer does the scoring and the writing).

The speedup of a single optimized run is an *estimate*: what the original method's full
budget would have cost at stock sb3-contrib's throughput, calibrated on this machine and
config when the run started (:mod:`rltrader.training.calibration`), over the wall time it
took. Only benchmark mode, which runs both methods side by side, reports a measured speedup
(``speedup_basis`` says which one a summary holds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltrader.config import Config, TrainingConfig
from rltrader.errors import UserInputError
from rltrader.records import BestModelSummary, IterationSummary, RunSummary, SplitOutcome
from rltrader.training.budget import original_budget
from rltrader.training.run_state import RunState

TEST = "test"


def estimated_original_seconds(state: RunState, training: TrainingConfig) -> float:
    """Seconds the original method's fixed budget would take for the finished iterations, by its calibrated
    cost; at each iteration's own throughput for a run state from before calibration (no fast engine)."""
    records, full = state.iterations, original_budget(training)
    if state.original_throughput is not None:
        return len(records) * state.original_throughput.iteration_seconds(full)
    return sum(full / record.timesteps_per_second for record in records if record.timesteps_per_second)


def speedup_so_far(state: RunState, training: TrainingConfig) -> float | None:
    """The estimated speedup of the iterations finished so far; None for the original method (the baseline)."""
    walls = sum(record.wall_seconds for record in state.iterations)
    if state.method == "original" or walls <= 0:
        return None
    return estimated_original_seconds(state, training) / walls


def build_summary(state: RunState, config: Config, scores: Mapping[str, SplitOutcome], report_seconds: float,
                  best_model_path: Path, report_path: Path, account: dict[str, Any] | None = None) -> RunSummary:
    """The summary (guide's keys, per-iteration detail, ``account``: the terms of its money figures)."""
    records, training = state.iterations, config.training
    walls = [record.wall_seconds for record in records]
    total = state.preprocess_seconds + sum(walls) + report_seconds
    if state.method == "original":
        speedup, basis, saved_seconds = 1.0, "baseline", 0.0
    else:
        original = estimated_original_seconds(state, training) + state.preprocess_seconds + report_seconds
        basis = "estimated_from_calibration" if state.original_throughput else "estimated_from_throughput"
        speedup, saved_seconds = original / total, original - total
    best = state.best.model_dump(exclude={"validation_metrics"}) if state.best else {}
    return RunSummary(
        optimization_completed=state.completed,
        method=state.method,
        optimizations=config.optimizations.model_dump(),
        seed=training.seed,
        total_speedup_achieved=round(speedup, 3),
        speedup_basis=basis,
        total_timesteps=sum(record.timesteps for record in records),
        total_timesteps_saved=sum(record.timesteps_saved for record in records),
        early_stops=sum(record.early_stopped for record in records),
        warm_starts=sum(record.warm_started for record in records),
        avg_iteration_time_minutes=round(sum(walls) / len(walls) / 60, 4) if walls else None,
        estimated_time_saved_hours=round(saved_seconds / 3600, 4),
        total_time_seconds=round(total, 3),
        preprocess_seconds=round(state.preprocess_seconds, 3),
        report_seconds=round(report_seconds, 3),
        best_model=BestModelSummary(**best, path=str(best_model_path)),
        validation=scores["validation"],
        test=scores[TEST],
        iterations=[IterationSummary(**record.model_dump(include=set(IterationSummary.model_fields)))
                    for record in records],  # the summary's subset of each record
        report=str(report_path),
        trials=state.trials,
        account=account,
        original_throughput=state.original_throughput,
    )


__all__ = ["TEST", "build_summary", "estimated_original_seconds", "speedup_so_far"]


def load_summary(path: str | Path) -> RunSummary:
    """``optimization_summary.json`` of a run directory (or the file itself), with a clear error."""
    path = Path(path)
    file = path / "optimization_summary.json" if path.is_dir() else path
    if not file.is_file():
        raise UserInputError(f"{path}: no optimization_summary.json; pass a finished run's directory, "
                             "e.g. results/42")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        raise UserInputError(f"{file}: not valid JSON; was the run interrupted while writing it?") from None
    if not isinstance(raw, dict) or not raw.get("optimization_completed"):
        raise UserInputError(f"{file}: the run has not finished; re-run its command to complete it")
    try:
        return RunSummary.model_validate(raw)
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors()[0]["loc"])
        raise UserInputError(f"{file}: not a run summary ({where}: {error.errors()[0]['msg']})") from None
