"""What a training run shows on the Prefect Artifacts page (every artifact has a key).

- ``training-progress``: iterations done out of planned, updated after each one;
- ``training-iterations``: a table of the iterations (timesteps, wall time, validation
  score, early stop, warm start, performance mode, candidate);
- ``training-summary``: the best model against buy-and-hold on the test split, the
  speedup and where the report lives;
- ``training-report``: a link to the report on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from rltrader.formatting import cell, number

PROGRESS_KEY = "training-progress"
ITERATIONS_KEY = "training-iterations"
SUMMARY_KEY = "training-summary"
REPORT_KEY = "training-report"


def start_progress(run_dir: Path, done: int, planned: int) -> UUID:
    return create_progress_artifact(100.0 * done / planned, key=PROGRESS_KEY,
                                    description=f"Iterations trained in {run_dir}")


def update_progress(artifact_id: UUID, done: int, planned: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / planned)


def iteration_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{
        "iteration": record["iteration"] + 1,
        "phase": record["phase"],
        "timesteps": record["timesteps"],
        "wall_s": round(record["wall_seconds"], 1),
        "timesteps_per_s": record["timesteps_per_second"],
        "validation_score": None if record["validation_score"] is None else round(record["validation_score"], 4),
        "early_stop": record["early_stopped"],
        "warm_start": record["warm_started"],
        "mode": "+".join(record.get("performance_modes") or []) or "n/a",
        "candidate": record.get("candidate", 0),
        "seed": record["seed"],
    } for record in records]


def publish_iterations(run_dir: Path, records: list[dict[str, Any]]) -> None:
    create_table_artifact(iteration_rows(records), key=ITERATIONS_KEY,
                          description=f"Iterations of {run_dir}")


def summary_markdown(summary: dict[str, Any]) -> str:
    agent, hold = summary["test"]["agent"], summary["test"]["buy_and_hold"]
    best = summary["best_model"]
    basis = {"estimated_from_throughput": "estimated from measured throughput",
             "measured_benchmark": "measured side by side", "baseline": "this is the baseline"}
    rows = [("Total return", "total_return", True), ("Sharpe", "sharpe", False), ("Sortino", "sortino", False),
            ("Max drawdown", "max_drawdown", True), ("Trades", "trades", False), ("Costs paid", "costs_paid", False)]
    lines = [
        f"# Best model vs buy-and-hold on the test split (seed {summary['seed']}, {summary['method']} method)", "",
        "| Metric | Agent | Buy and hold |", "|---|---:|---:|",
        *(f"| {label} | {cell(agent[key], pct)} | {cell(hold[key], pct)} |" for label, key, pct in rows),
        "",
        f"- Best model: iteration {best['iteration'] + 1} at {best['timesteps']:,} timesteps, validation "
        f"{best['metric']} {number(best['score'])} (the test split was used once, for this table)",
        f"- Speedup: **{summary['total_speedup_achieved']:.2f}x** "
        f"({basis.get(summary['speedup_basis'], summary['speedup_basis'])}); "
        f"{summary['total_timesteps']:,} timesteps trained, {summary['total_timesteps_saved']:,} saved, "
        f"{summary['early_stops']} early stops, {summary['warm_starts']} warm starts",
        f"- Wall time: {summary['total_time_seconds'] / 60:.1f} min",
        f"- Report: `{summary['report']}`",
        f"- Summary: `{Path(summary['report']).parent.parent / 'optimization_summary.json'}`",
        f"- Best model file: `{best['path']}`",
    ]
    return "\n".join(lines)


def publish_summary(summary: dict[str, Any]) -> None:
    create_markdown_artifact(summary_markdown(summary), key=SUMMARY_KEY,
                             description="Best model vs buy-and-hold on the test split")
    report = Path(summary["report"]).resolve()
    create_link_artifact(report.as_uri(), link_text=str(report), key=REPORT_KEY,
                         description="The full report (validation and test, equity curves)")


def records_of(run_dir: Path) -> list[dict[str, Any]]:
    state = run_dir / "run_state.json"
    return json.loads(state.read_text(encoding="utf-8"))["iterations"] if state.is_file() else []
