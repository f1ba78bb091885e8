"""Benchmark mode: the original method and the optimized one on the same data, config and
seed, one after the other, and a side-by-side comparison of time and model quality.

The original is ``Config.original_method()`` of the very config the optimized run uses
(every optimization off, nothing else changed), so the speedup is like for like. Both
runs resume like any run, so an interrupted benchmark continues where it stopped; their
times are the sums of per-iteration wall times, which a resume does not inflate.

Quality is judged fairly (:func:`compare_runs`): on the test split, which selected neither
model and which each method's kept model meets exactly once; validation scores are maxima
over different numbers of looks (the optimized method looks every ``eval_freq`` timesteps,
the original once per iteration) and are shown, never used to decide. Over several seeds
(benchmark mode runs ``benchmark_seeds``, default 5) the per-seed differences optimized -
original get a 90% interval, and "quality held" is said only when its lower end is above
minus the tolerance: one seed, or an interval that reaches lower, is "not shown".
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from rltrader.atomic import write_json
from rltrader.config import Config
from rltrader.errors import UserInputError
from rltrader.records import Comparison, MethodFigures, QualityComparison, RunSummary, SeedPair
from rltrader.training.spec import RunSpec
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)

METHODS = ("original", "optimized")
#: How much worse the optimized method may be, per quality metric, for quality to count as held.
QUALITY_TOLERANCES = {"test_sharpe": 1.0, "test_edge_captured": 0.05}
SEED_STRIDE = 1_000  # benchmark seeds are this far apart: iteration i trains with seed + i
#: One-sided 95% Student t quantiles (a two-sided 90% interval) by degrees of freedom.
T_95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753,
        1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697)


def benchmark_seeds(seed: int, count: int) -> list[int]:
    """The seeds of a benchmark: ``seed``, ``seed + 1000``, ...: far enough apart that no two runs share
    an iteration seed."""
    return [seed + SEED_STRIDE * index for index in range(count)]


def mean_interval(values: Sequence[float]) -> tuple[float | None, list[float] | None]:
    """The mean and its two-sided 90% Student t interval (None for fewer than two values)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    quantile = T_95[min(len(values) - 2, len(T_95) - 1)] if len(values) - 1 <= len(T_95) else 1.645
    half = quantile * statistics.stdev(values) / math.sqrt(len(values))
    return mean, [mean - half, mean + half]


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
        test_sharpe_interval=summary.test.agent.get("sharpe_interval"),
        test_edge_captured=summary.test.agent.get("edge_captured"),
        validation_looks=summary.trials,
    )


def run_benchmark(config: Config, data_path: str | Path, run_dir: str | Path, settings_file: str | None = None,
                  follow_performance_mode: bool = False) -> Comparison:
    """Run both methods into ``run_dir/{original,optimized}``; write and return ``comparison.json``.

    :param config: the optimized method's config; the original is ``config.original_method()``
    :param data_path: the bar file both methods train on
    :param run_dir: the benchmark's directory
    :param settings_file: the performance-mode file both runs read (None: the config's)
    :param follow_performance_mode: switch quiet/performance before every update as that file says
    """
    run_dir = Path(run_dir)
    configs = {"original": config.original_method(), "optimized": config}
    summaries = {}
    for method in METHODS:
        logger.info("Benchmark: %s method", method)
        spec = RunSpec(config=configs[method], data_path=str(data_path), run_dir=str(run_dir / method),
                       settings_file=settings_file, follow_performance_mode=follow_performance_mode)
        summaries[method] = Trainer.from_spec(spec).run()
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


def compare_runs(originals: Sequence[RunSummary], optimizeds: Sequence[RunSummary]) -> QualityComparison:
    """Time and quality of finished original and optimized runs, paired seed by seed (see the module
    docstring): the test edge captured where every run is on a known-answer market, else the
    test Sharpe, compared as optimized - original with a 90% interval over the seeds."""
    if len(originals) != len(optimizeds) or not originals:
        raise UserInputError(f"compare needs as many original runs as optimized ones (got {len(originals)} and "
                             f"{len(optimizeds)}); pass them in pairs, in the same order")
    pairs = []
    for original, optimized in zip(originals, optimizeds, strict=True):
        before, after = run_side(original), run_side(optimized)
        speedup = before.total_time_seconds / after.total_time_seconds
        pairs.append(SeedPair(seed=optimized.seed, speedup=round(speedup, 3), original=before, optimized=after))
    known = all(pair.original.test_edge_captured is not None and pair.optimized.test_edge_captured is not None
                for pair in pairs)
    metric = "test_edge_captured" if known else "test_sharpe"
    differences = [getattr(pair.optimized, metric) - getattr(pair.original, metric) for pair in pairs
                   if getattr(pair.optimized, metric) is not None and getattr(pair.original, metric) is not None]
    mean, interval = mean_interval(differences)
    tolerance = QUALITY_TOLERANCES[metric]
    speedup = (sum(pair.original.total_time_seconds for pair in pairs)
               / sum(pair.optimized.total_time_seconds for pair in pairs))
    return QualityComparison(
        speedup=round(speedup, 3), quality_metric=metric, differences=[round(value, 4) for value in differences],
        mean_difference=mean, difference_interval=interval, quality_tolerance=tolerance,
        quality_held=interval is not None and interval[0] > -tolerance,
        selection_metric=optimizeds[0].best_model.metric, pairs=pairs)
