"""Benchmark mode: the original method and the optimized one on the same data, config and
seed, one after the other, and a side-by-side comparison of time and model quality.

The original is ``Config.original_method()`` of the very config the optimized run uses
(every optimization off, nothing else changed), so the speedup is like for like. Both
runs resume like any run, so an interrupted benchmark continues where it stopped; their
times are the sums of per-iteration wall times, which a resume does not inflate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rltrader.atomic import write_json
from rltrader.config import Config
from rltrader.training.callbacks import UpdateHook
from rltrader.training.trainer import Trainer

logger = logging.getLogger(__name__)

METHODS = ("original", "optimized")


def _side(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "total_time_seconds": summary["total_time_seconds"],
        "iteration_wall_seconds": [record["wall_seconds"] for record in summary["iterations"]],
        "total_timesteps": summary["total_timesteps"],
        "early_stops": summary["early_stops"],
        "warm_starts": summary["warm_starts"],
        "best_validation_score": summary["best_model"].get("score"),
        "validation_sharpe": summary["validation"]["agent"]["sharpe"],
        "test_sharpe": summary["test"]["agent"]["sharpe"],
        "test_total_return": summary["test"]["agent"]["total_return"],
        "test_buy_and_hold_sharpe": summary["test"]["buy_and_hold"]["sharpe"],
        "summary": summary["report"].replace("report/report.md", "optimization_summary.json"),
    }


def run_benchmark(config: Config, data_path: str | Path, run_dir: str | Path,
                  update_hooks: Sequence[UpdateHook] = ()) -> dict[str, Any]:
    """Run both methods into ``run_dir/{original,optimized}``; write and return ``comparison.json``."""
    run_dir = Path(run_dir)
    configs = {"original": config.original_method(), "optimized": config}
    summaries = {}
    for method in METHODS:
        logger.info("Benchmark: %s method", method)
        summaries[method] = Trainer(configs[method], data_path, run_dir / method, update_hooks).run()
    original, optimized = (_side(summaries[method]) for method in METHODS)
    speedup = original["total_time_seconds"] / optimized["total_time_seconds"]
    comparison = {
        "seed": config.training.seed,
        "speedup": round(speedup, 3),
        "original": original,
        "optimized": optimized,
        "timesteps_ratio": round(original["total_timesteps"] / max(1, optimized["total_timesteps"]), 3),
    }
    write_json(run_dir / "comparison.json", comparison)
    # the optimized run's summary now carries the measured speedup instead of its estimate
    summaries["optimized"].update(
        total_speedup_achieved=round(speedup, 3), speedup_basis="measured_benchmark",
        estimated_time_saved_hours=round((original["total_time_seconds"] - optimized["total_time_seconds"]) / 3600, 4))
    write_json(run_dir / "optimized" / "optimization_summary.json", summaries["optimized"])
    logger.info("Benchmark: original %.1fs, optimized %.1fs, speedup %.2fx", original["total_time_seconds"],
                optimized["total_time_seconds"], speedup)
    return comparison
