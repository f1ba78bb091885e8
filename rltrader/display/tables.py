"""Tables for the terminal and the Prefect table artifact.

- :func:`final_tables`: what ``rltrader train`` prints at the end (iterations; best model
  against buy-and-hold on validation and test);
- :func:`comparison_table`: ``rltrader compare`` and benchmark mode;
- :func:`evaluation_text`: ``rltrader evaluate`` (plain text: the agent and every baseline);
- :func:`iteration_table_rows`: the ``training-iterations`` artifact (raw values, one dict a row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from rltrader.display.formatting import count, minutes, number, rate, yes
from rltrader.display.rows import COMPARISON, EVALUATION, HEADLINE, split_columns
from rltrader.evaluation.report import BASELINES, EvaluationReport
from rltrader.records import IterationRecord, QualityComparison, RunSummary

SPLITS = ("validation", "test")


def final_tables(summary: RunSummary) -> list[Table]:
    """The iterations, and the best model against buy-and-hold on validation and test."""
    iterations = Table(title=f"Iterations ({summary.method} method, seed {summary.seed})", title_justify="left")
    for column in ("#", "phase", "timesteps", "wall", "ts/s", "validation", "early stop", "warm start"):
        iterations.add_column(column, justify="left" if column == "phase" else "right")
    for record in summary.iterations:
        iterations.add_row(str(record.iteration + 1), record.phase, count(record.timesteps),
                           minutes(record.wall_seconds), rate(record.timesteps_per_second),
                           number(record.validation_score), yes(record.early_stopped), yes(record.warm_started))
    best = summary.best_model
    quality = Table(title=f"Best model (iteration {(best.iteration or 0) + 1}, validation {best.metric} "
                          f"{number(best.score)}) vs buy-and-hold", title_justify="left")
    columns = split_columns(SPLITS)
    quality.add_column("", justify="right")
    for header, _, _ in columns:
        quality.add_column(header, justify="right")
    for row in HEADLINE:
        quality.add_row(row.label, *(row.of(getattr(getattr(summary, split), who)) for _, split, who in columns))
    return [iterations, quality]


def comparison_table(comparison: QualityComparison) -> Table:
    """Both methods' figures side by side."""
    table = Table(title="Original vs optimized", title_justify="left")
    for column in ("", "original", "optimized"):
        table.add_column(column, justify="right")
    for row in COMPARISON:
        table.add_row(row.label, row.of(comparison.original), row.of(comparison.optimized))
    return table


def comparison_verdict(comparison: QualityComparison) -> str:
    verdict = "held" if comparison.quality_held else "NOT held"
    return (f"speedup {comparison.speedup:.2f}x; quality {verdict} (optimized best validation score "
            f">= original's - {comparison.quality_tolerance})")


def evaluation_text(report: EvaluationReport) -> str:
    """A plain-text table: the agent and each baseline on the evaluation metrics."""
    info = report.info
    names = ("agent", *BASELINES)
    cells = [[row.of(report.metrics[name]) for row in EVALUATION] for name in names]
    widths = [max(len(row.header), *(len(line[i]) for line in cells)) for i, row in enumerate(EVALUATION)]
    first = max(len("policy"), *map(len, names))
    header = "  " + "policy".ljust(first) + "".join(
        f" {row.header:>{w}}" for row, w in zip(EVALUATION, widths, strict=True))
    lines = [f"{report.split}: {info['bars']:,} bars, {info['start']} -> {info['end']} "
             f"({info.get('evaluator', 'given actions')} evaluator)", header]
    lines += ["  " + name.ljust(first) + "".join(f" {value:>{w}}" for value, w in zip(line, widths, strict=True))
              for name, line in zip(names, cells, strict=True)]
    return "\n".join(lines)


def iteration_table_rows(records: Sequence[IterationRecord]) -> list[dict[str, Any]]:
    """One row per iteration for the ``training-iterations`` table artifact (values, not text)."""
    return [{
        "iteration": record.iteration + 1,
        "phase": record.phase,
        "timesteps": record.timesteps,
        "wall_s": round(record.wall_seconds, 1),
        "timesteps_per_s": record.timesteps_per_second,
        "validation_score": None if record.validation_score is None else round(record.validation_score, 4),
        "early_stop": record.early_stopped,
        "warm_start": record.warm_started,
        "mode": "+".join(record.performance_modes) or "n/a",
        "candidate": record.candidate or 0,
        "seed": record.seed,
    } for record in records]


__all__ = ["comparison_table", "comparison_verdict", "evaluation_text", "final_tables", "iteration_table_rows"]
