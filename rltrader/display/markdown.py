"""Markdown for people: the run's ``report.md`` and the Prefect UI's summary artifact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rltrader.display.formatting import minutes, number
from rltrader.display.rows import REPORT, SUMMARY, Row
from rltrader.evaluation.report import EvaluationReport
from rltrader.records import BestModel, Metrics, RunSummary

SPEEDUP_BASIS = {"estimated_from_throughput": "estimated from measured throughput",
                 "measured_benchmark": "measured side by side", "baseline": "this is the baseline"}


def agent_vs_hold_table(rows: Sequence[Row], agent: Metrics, hold: Metrics) -> list[str]:
    """A markdown table of ``rows``: the agent's figure beside buy-and-hold's."""
    return ["| Metric | Agent | Buy and hold |", "|---|---:|---:|",
            *(f"| {row.label} | {row.of(agent)} | {row.of(hold)} |" for row in rows)]


def run_report(method: str, seed: int, best: BestModel | None, reports: Mapping[str, EvaluationReport]) -> str:
    """``report.md``: the best model against buy-and-hold on each split, with the equity pictures."""
    where = (f"iteration {best.iteration + 1} at {best.timesteps:,} timesteps, validation {best.metric} "
             f"{number(best.score)}" if best is not None and best.iteration is not None else "not recorded")
    lines = [f"# Best model vs buy-and-hold ({method} method, seed {seed})", "",
             f"Best model: {where}. The test split was used once, here.", ""]
    for split, report in reports.items():
        info = report.info
        lines += [f"## {split.capitalize()} ({info['start']} to {info['end']}, {info['bars']:,} bars)", ""]
        lines += agent_vs_hold_table(REPORT, report.metrics["agent"], report.metrics["buy_and_hold"])
        lines += ["", f"![{split} equity]({split}/equity.png)", ""]
    return "\n".join(lines)


def summary_markdown(summary: RunSummary) -> str:
    """The ``training-summary`` artifact: the best model against buy-and-hold on the test split, and the run."""
    best = summary.best_model
    lines = [
        f"# Best model vs buy-and-hold on the test split (seed {summary.seed}, {summary.method} method)", "",
        *agent_vs_hold_table(SUMMARY, summary.test.agent, summary.test.buy_and_hold),
        "",
        f"- Best model: iteration {(best.iteration or 0) + 1} at {best.timesteps or 0:,} timesteps, validation "
        f"{best.metric} {number(best.score)} (the test split was used once, for this table)",
        f"- Speedup: **{summary.total_speedup_achieved:.2f}x** "
        f"({SPEEDUP_BASIS.get(summary.speedup_basis, summary.speedup_basis)}); "
        f"{summary.total_timesteps:,} timesteps trained, {summary.total_timesteps_saved:,} saved, "
        f"{summary.early_stops} early stops, {summary.warm_starts} warm starts",
        f"- Wall time: {minutes(summary.total_time_seconds)}",
        f"- Report: `{summary.report}`",
        f"- Summary: `{Path(summary.report).parent.parent / 'optimization_summary.json'}`",
        f"- Best model file: `{best.path}`",
    ]
    return "\n".join(lines)


__all__ = ["SPEEDUP_BASIS", "agent_vs_hold_table", "run_report", "summary_markdown"]
