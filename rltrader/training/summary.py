"""What a run tells its user: the per-iteration progress line, the final report of the best
model on the test split, and ``optimization_summary.json``.

The speedup of a single optimized run is an *estimate*: what the original method's full
budget would have cost at the throughput this run measured, over the wall time it took.
Only benchmark mode, which runs both methods side by side, reports a measured speedup
(``speedup_basis`` says which one a summary holds).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rltrader.atomic import write_json, write_text
from rltrader.config import TrainingConfig
from rltrader.evaluation.report import evaluate_model, write_report
from rltrader.formatting import cell
from rltrader.training.budget import original_budget
from rltrader.training.models import load_for_training
from rltrader.training.run_state import RunState

if TYPE_CHECKING:
    from rltrader.training.trainer import Trainer

TEST = "test"


def estimated_original_seconds(records: list[dict[str, Any]], training: TrainingConfig) -> float:
    """Seconds the original method's fixed budget would take at each iteration's measured throughput."""
    full = original_budget(training)
    return sum(full / record["timesteps_per_second"] for record in records if record.get("timesteps_per_second"))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def iteration_progress_line(state: RunState, training: TrainingConfig) -> str:
    """One line per finished iteration: score, timing, ETA, estimated speedup, timesteps saved."""
    records = state.iterations
    last = records[-1]
    walls = [record["wall_seconds"] for record in records]
    average = sum(walls) / len(walls)
    remaining = training.iterations - len(records)
    saved = sum(record["timesteps_saved"] for record in records)
    best = state.best["score"] if state.best else float("nan")
    parts = [
        f"Iteration {last['iteration'] + 1}/{training.iterations} [{last['phase']}] done:",
        f"{last['timesteps']:,} timesteps in {_minutes(last['wall_seconds'])}",
        f"({last['timesteps_per_second'] or 0:,.0f}/s)" + (", early stop" if last["early_stopped"] else ""),
        f"| validation {training.selection_metric} {last['validation_score']:.3f} (best {best:.3f})",
        f"| avg iteration {_minutes(average)}, ETA {_minutes(average * remaining)}",
        f"| timesteps saved {saved:,}",
    ]
    if state.method != "original":
        parts.append(f"| speedup so far ~{estimated_original_seconds(records, training) / sum(walls):.1f}x (est.)")
    return " ".join(parts)


def final_report(trainer: "Trainer") -> dict[str, Any]:
    """Evaluate the best model on validation and, once, on test, and write ``report/``.

    Returns the agent's and buy-and-hold's metrics per split and the seconds it took."""
    started = time.perf_counter()
    config, paths = trainer.config, trainer.paths
    evaluator = "fast" if config.optimizations.fast_evaluation else "reference"
    model = load_for_training(paths.best_model, trainer.env, config.training.seed)
    reports = {split: evaluate_model(model, trainer.market, split, config.env, seed=config.training.seed,
                                     evaluator=evaluator)
               for split in ("validation", TEST)}
    for split, report in reports.items():
        write_report(report, paths.report / split)
    write_text(paths.report / "report.md", _report_markdown(trainer, reports))
    outcome: dict[str, Any] = {split: {name: report.metrics[name] for name in ("agent", "buy_and_hold")}
                               for split, report in reports.items()}
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def _report_markdown(trainer: "Trainer", reports: dict[str, Any]) -> str:
    best = trainer.state.best or {}
    rows = [("Total return", "total_return", True), ("CAGR", "cagr", True), ("Sharpe", "sharpe", False),
            ("Sortino", "sortino", False), ("Max drawdown", "max_drawdown", True), ("Calmar", "calmar", False),
            ("Trades", "trades", False), ("Win rate", "win_rate", True), ("Exposure", "exposure", True),
            ("Costs paid", "costs_paid", False)]
    lines = [f"# Best model vs buy-and-hold ({trainer.method} method, seed {trainer.training.seed})", "",
             f"Best model: iteration {best.get('iteration', 0) + 1} at {best.get('timesteps', 0):,} timesteps, "
             f"validation {best.get('metric')} {cell(best.get('score'))}. The test split was used once, here.", ""]
    for split, report in reports.items():
        agent, hold = report.metrics["agent"], report.metrics["buy_and_hold"]
        info = report.info
        lines += [f"## {split.capitalize()} ({info['start']} to {info['end']}, {info['bars']:,} bars)",
                  "", "| Metric | Agent | Buy and hold |", "|---|---:|---:|"]
        lines += [f"| {label} | {cell(agent[key], pct)} | {cell(hold[key], pct)} |" for label, key, pct in rows]
        lines += ["", f"![{split} equity]({split}/equity.png)", ""]
    return "\n".join(lines)


def write_summary(trainer: "Trainer", final: dict[str, Any]) -> dict[str, Any]:
    """Write ``optimization_summary.json`` (the guide's keys plus per-iteration detail)."""
    state, training = trainer.state, trainer.training
    report_seconds = final["seconds"]
    records = state.iterations
    walls = [record["wall_seconds"] for record in records]
    total = state.preprocess_seconds + sum(walls) + report_seconds
    if state.method == "original":
        speedup, basis, saved_seconds = 1.0, "baseline", 0.0
    else:
        original = estimated_original_seconds(records, training) + state.preprocess_seconds + report_seconds
        speedup, basis, saved_seconds = original / total, "estimated_from_throughput", original - total
    summary = {
        "optimization_completed": state.completed,
        "method": state.method,
        "optimizations": {**trainer.config.optimizations.model_dump(),
                          "cache_environments": trainer.config.cache.enabled},
        "seed": training.seed,
        "total_speedup_achieved": round(speedup, 3),
        "speedup_basis": basis,
        "total_timesteps": sum(record["timesteps"] for record in records),
        "total_timesteps_saved": sum(record["timesteps_saved"] for record in records),
        "early_stops": sum(record["early_stopped"] for record in records),
        "warm_starts": sum(record["warm_started"] for record in records),
        "avg_iteration_time_minutes": round(sum(walls) / len(walls) / 60, 4) if walls else None,
        "estimated_time_saved_hours": round(saved_seconds / 3600, 4),
        "total_time_seconds": round(total, 3),
        "preprocess_seconds": round(state.preprocess_seconds, 3),
        "report_seconds": round(report_seconds, 3),
        "best_model": {**{k: v for k, v in (state.best or {}).items() if k != "validation_metrics"},
                       "path": str(trainer.paths.best_model)},
        "validation": final["validation"],
        "test": final[TEST],
        "iterations": [{key: record[key] for key in ("iteration", "phase", "seed", "budget_timesteps", "timesteps",
                                                      "timesteps_saved", "early_stopped", "warm_started",
                                                      "validation_score", "wall_seconds", "timesteps_per_second")}
                       for record in records],
        "report": str(trainer.paths.report / "report.md"),
    }
    write_json(trainer.paths.summary, summary)
    return summary
