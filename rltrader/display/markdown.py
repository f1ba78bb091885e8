"""Markdown for people: the run's ``report.md`` and the Prefect UI's summary artifact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rltrader.display.formatting import minutes, number
from rltrader.display.rows import REPORT, SUMMARY, Row
from rltrader.display.tables import account_text
from rltrader.evaluation.report import EvaluationReport
from rltrader.records import BestModel, Metrics, RunSummary

SPEEDUP_BASIS = {"estimated_from_calibration": "estimated",
                 "estimated_from_throughput": "estimated from measured throughput",
                 "measured_benchmark": "measured side by side", "baseline": "this is the baseline"}


def agent_vs_hold_table(rows: Sequence[Row], agent: Metrics, hold: Metrics, oracle: Metrics | None = None) -> list[str]:
    """A markdown table of ``rows``: the agent's figure beside buy-and-hold's (and the oracle's, where
    the market is a known-answer one); rows no column has are left out."""
    columns = [agent, hold, *([oracle] if oracle is not None else [])]
    header = "| Metric | Agent | Buy and hold |" + (" Oracle |" if oracle is not None else "")
    lines = [header, "|---|" + "---:|" * len(columns)]
    for row in rows:
        cells = [row.of(column) for column in columns]
        if any(cells):
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines


HOW_TO_READ = (
    "How to read this: a Sharpe measured on a short window is mostly noise (two weeks of 15-minute bars give a "
    "standard error of about 5), so judge it by its interval, by P(true Sharpe > 0), and by where it ranks among "
    "random policies that trade as often. Validation figures selected the model out of every look and are "
    "flattered by that choice; the deflated Sharpe discounts them for the number of looks. The test figures, "
    "one look, are the result. CAGR and Calmar are left out for spans under 90 days."
)


def run_report(method: str, seed: int, best: BestModel | None, reports: Mapping[str, EvaluationReport],
               trials: int | None = None) -> str:
    """``report.md``: the best model against buy-and-hold on each split, with intervals and the pictures."""
    looks = f", the best of {trials:,} validation looks" if trials else ""
    where = (f"iteration {best.iteration + 1} at {best.timesteps:,} timesteps, validation {best.metric} "
             f"{number(best.score)}{looks}" if best is not None and best.iteration is not None else "not recorded")
    lines = [f"# Best model vs buy-and-hold ({method} method, seed {seed})", "",
             f"Best model: {where}. Validation selected it; the test split was used once, here.", "",
             HOW_TO_READ, ""]
    for split, report in reports.items():
        info, agent = report.info, report.metrics["agent"]
        role = ", which selected the model (not a result)" if split == "validation" else ", out of sample (one look)"
        lines += [f"## {split.capitalize()}{role}", "",
                  f"{info['start']} to {info['end']}: {agent['span_days']:.1f} days, {info['bars']:,} bars.", ""]
        lines += agent_vs_hold_table(REPORT, agent, report.metrics["buy_and_hold"], report.metrics.get("oracle"))
        lines += ["", f"Sharpe intervals: {info['sharpe_error_method']}. Random policies: {agent['null_policies']:,} "
                  f"with the agent's turnover ({agent['turnover']:.1%} of bars), median Sharpe "
                  f"{number(agent['null_median_sharpe'], 2)}, 95th percentile {number(agent['null_p95_sharpe'], 2)}.",
                  "", account_text(info).strip(), "", f"![{split} equity]({split}/equity.png)", ""]
    return "\n".join(lines)


def summary_markdown(summary: RunSummary) -> str:
    """The ``training-summary`` artifact: the best model against buy-and-hold on the test split, and the run."""
    best = summary.best_model
    lines = [
        f"# Best model vs buy-and-hold on the test split (seed {summary.seed}, {summary.method} method)", "",
        *agent_vs_hold_table(SUMMARY, summary.test.agent, summary.test.buy_and_hold, summary.test.oracle),
        "",
        f"- Best model: iteration {(best.iteration or 0) + 1} at {best.timesteps or 0:,} timesteps, validation "
        f"{best.metric} {number(best.score)}, the best of {summary.trials or 0:,} validation looks "
        "(validation selected it; the test split was used once, for this table)",
        f"- Speedup: **{summary.total_speedup_achieved:.2f}x** "
        f"({SPEEDUP_BASIS.get(summary.speedup_basis, summary.speedup_basis)}); "
        f"{summary.total_timesteps:,} timesteps trained, {summary.total_timesteps_saved:,} saved, "
        f"{summary.early_stops} early stops, {summary.warm_starts} warm starts",
        *([f"- Speedup basis: {summary.original_throughput.basis()}"] if summary.original_throughput else []),
        f"- Wall time: {minutes(summary.total_time_seconds)}",
        *([f"- {account_text({'account': summary.account}).strip()}"] if summary.account else []),
        f"- Report: `{summary.report}`",
        f"- Summary: `{Path(summary.report).parent.parent / 'optimization_summary.json'}`",
        f"- Best model file: `{best.path}`",
    ]
    return "\n".join(lines)


__all__ = ["SPEEDUP_BASIS", "agent_vs_hold_table", "run_report", "summary_markdown"]
