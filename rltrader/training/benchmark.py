"""Benchmark mode: the original method and the optimized one on the same data, config and
seed, one after the other, and a side-by-side comparison of time and model quality.

The original is ``Config.original_method()`` of the very config the optimized run uses
(every optimization off, nothing else changed), so the speedup is like for like. Both
runs resume like any run, so an interrupted benchmark continues where it stopped; their
times are the sums of per-iteration wall times, which a resume does not inflate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from rltrader.atomic import write_json
from rltrader.config import Config
from rltrader.errors import UserInputError
from rltrader.records import Comparison, MethodFigures, QualityComparison, RunSummary
from rltrader.runtime.hooks import UpdateHook
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)

METHODS = ("original", "optimized")
QUALITY_TOLERANCE = 0.1  # in units of the selection metric (Sharpe by default)


def run_side(summary: RunSummary) -> MethodFigures:
    """One method's figures, from its run's summary."""
    return MethodFigures(
        total_time_seconds=summary.total_time_seconds,
        iteration_wall_seconds=[record.wall_seconds for record in summary.iterations],
        total_timesteps=summary.total_timesteps,
        early_stops=summary.early_stops,
        warm_starts=summary.warm_starts,
        best_validation_score=summary.best_model.score,
        validation_sharpe=summary.validation.agent.get("sharpe"),
        test_sharpe=summary.test.agent.get("sharpe"),
        test_total_return=summary.test.agent.get("total_return"),
        test_buy_and_hold_sharpe=summary.test.buy_and_hold.get("sharpe"),
        summary=str(Path(summary.report).parent.parent / "optimization_summary.json"),
    )


def run_benchmark(config: Config, data_path: str | Path, run_dir: str | Path,
                  update_hooks: Sequence[UpdateHook] = ()) -> Comparison:
    """Run both methods into ``run_dir/{original,optimized}``; write and return ``comparison.json``."""
    run_dir = Path(run_dir)
    configs = {"original": config.original_method(), "optimized": config}
    summaries = {}
    for method in METHODS:
        logger.info("Benchmark: %s method", method)
        summaries[method] = Trainer(configs[method], data_path, run_dir / method, update_hooks).run()
    return write_comparison(run_dir, summaries["original"], summaries["optimized"], config.training.seed)


def write_comparison(run_dir: str | Path, original_summary: RunSummary, optimized_summary: RunSummary,
                     seed: int) -> Comparison:
    """Compare two finished runs side by side; write ``comparison.json`` and the measured speedup.

    The optimized run's ``optimization_summary.json`` then carries the measured speedup
    instead of its throughput estimate (``speedup_basis: measured_benchmark``)."""
    run_dir = Path(run_dir)
    original, optimized = run_side(original_summary), run_side(optimized_summary)
    speedup = original.total_time_seconds / optimized.total_time_seconds
    comparison = Comparison(seed=seed, speedup=round(speedup, 3), original=original, optimized=optimized,
                            timesteps_ratio=round(original.total_timesteps / max(1, optimized.total_timesteps), 3))
    write_json(run_dir / "comparison.json", comparison.to_json())
    measured = optimized_summary.model_copy(update={
        "total_speedup_achieved": round(speedup, 3), "speedup_basis": "measured_benchmark",
        "estimated_time_saved_hours": round((original.total_time_seconds - optimized.total_time_seconds) / 3600, 4)})
    write_json(Path(optimized.summary), measured.to_json())
    logger.info("Benchmark: original %.1fs, optimized %.1fs, speedup %.2fx", original.total_time_seconds,
                optimized.total_time_seconds, speedup)
    return comparison


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


def compare_runs(original: RunSummary, optimized: RunSummary) -> QualityComparison:
    """Time, timesteps and quality of two finished runs, side by side.

    Quality held when the optimized best validation score is at least the original's
    minus ``QUALITY_TOLERANCE``: validation, because that is what selected each model;
    the test figures are shown, never used to decide."""
    before, after = run_side(original), run_side(optimized)
    speedup = before.total_time_seconds / after.total_time_seconds
    held = (before.best_validation_score is not None and after.best_validation_score is not None
            and after.best_validation_score >= before.best_validation_score - QUALITY_TOLERANCE)
    return QualityComparison(speedup=round(speedup, 3), quality_held=held, quality_tolerance=QUALITY_TOLERANCE,
                             selection_metric=optimized.best_model.metric, original=before, optimized=after)
