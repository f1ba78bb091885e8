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

from rltrader.display.formatting import count, interval, minutes, number, percent, percentile, probability, rate, yes
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
    quality = Table(title=f"Best model vs buy-and-hold: {selection_note(summary)}", title_justify="left")
    columns = split_columns(SPLITS)
    quality.add_column("", justify="right")
    for header, _, _ in columns:
        quality.add_column(header, justify="right")
    for row in HEADLINE:
        cells = [row.of(getattr(getattr(summary, split), who)) for _, split, who in columns]
        if any(cells):
            quality.add_row(row.label, *cells)
    if summary.account:
        quality.caption = account_text({"account": summary.account}).strip()
        quality.caption_justify = "left"
    return [iterations, quality]


def selection_note(summary: RunSummary) -> str:
    """What the validation figures are: the score that picked the model out of every look, not a result."""
    best = summary.best_model
    looks = f"the best of {summary.trials:,} validation looks" if summary.trials else "the best validation look"
    return (f"kept at iteration {(best.iteration or 0) + 1} for validation {best.metric} {number(best.score)}, "
            f"{looks} (validation selected it; test, used once, judges it)")


def comparison_table(comparison: QualityComparison) -> Table:
    """Both methods' figures side by side (one seed), or one row per seed (several)."""
    if len(comparison.pairs) == 1:
        pair = comparison.pairs[0]
        table = Table(title=f"Original vs optimized (seed {pair.seed})", title_justify="left")
        for column in ("", "original", "optimized"):
            table.add_column(column, justify="right")
        for row in COMPARISON:
            cells = [row.of(pair.original), row.of(pair.optimized)]
            if any(cell != "n/a" for cell in cells):
                table.add_row(row.label, *cells)
        return table
    edge = comparison.quality_metric == "test_edge_captured"
    table = Table(title=f"Original vs optimized over {len(comparison.pairs)} seeds (test: one look per model)",
                  title_justify="left")
    for column in ("seed", "time orig", "time opt", "speedup", "test Sharpe orig", "test Sharpe opt",
                   *(("edge orig", "edge opt") if edge else ()), "looks orig", "looks opt"):
        table.add_column(column, justify="right")
    for pair in comparison.pairs:
        before, after = pair.original, pair.optimized
        table.add_row(str(pair.seed), minutes(before.total_time_seconds), minutes(after.total_time_seconds),
                      f"{pair.speedup:.2f}x", number(before.test_sharpe, 2), number(after.test_sharpe, 2),
                      *((percent(before.test_edge_captured), percent(after.test_edge_captured)) if edge else ()),
                      count(before.validation_looks), count(after.validation_looks))
    return table


QUALITY_NAMES = {"test_sharpe": "test Sharpe", "test_edge_captured": "test edge captured"}


def comparison_verdict(comparison: QualityComparison) -> str:
    """The speedup, and whether quality held, with the interval that decides it."""
    name = QUALITY_NAMES[comparison.quality_metric]
    tolerance = comparison.quality_tolerance
    show = percent if comparison.quality_metric == "test_edge_captured" else (lambda value: number(value, 2))
    seeds = len(comparison.differences)
    if comparison.difference_interval is None:
        measured = (f"optimized - original {show(comparison.mean_difference)} on 1 seed: no interval"
                    if seeds else "no test figures to compare")
        return (f"speedup {comparison.speedup:.2f}x; quality not shown ({name}: {measured}; "
                "run several seeds, e.g. --benchmark_seeds 5)")
    low, high = comparison.difference_interval
    verdict = "held" if comparison.quality_held else "not shown"
    return (f"speedup {comparison.speedup:.2f}x; quality {verdict} ({name}, optimized - original "
            f"{show(comparison.mean_difference)}, 90% interval [{show(low)}, {show(high)}] over {seeds} seeds; "
            f"held needs its lower end above -{show(tolerance)})")


def evaluation_text(report: EvaluationReport) -> str:
    """A plain-text table: the agent and each baseline on the evaluation metrics."""
    info = report.info
    names = ("agent", *BASELINES, *(["oracle"] if "oracle" in report.metrics else []))
    rows = [row for row in EVALUATION if any(row.of(report.metrics[name]) for name in names)]
    cells = [[row.of(report.metrics[name]) for row in rows] for name in names]
    widths = [max(len(row.header), *(len(line[i]) for line in cells)) for i, row in enumerate(rows)]
    first = max(len("policy"), *map(len, names))
    header = "  " + "policy".ljust(first) + "".join(
        f" {row.header:>{w}}" for row, w in zip(rows, widths, strict=True))
    agent = report.metrics["agent"]
    lines = [f"{report.split}: {info['bars']:,} bars, {agent['span_days']:.1f} days, {info['start']} -> {info['end']} "
             f"({info.get('evaluator', 'given actions')} evaluator)", header]
    lines += ["  " + name.ljust(first) + "".join(f" {value:>{w}}" for value, w in zip(line, widths, strict=True))
              for name, line in zip(names, cells, strict=True)]
    lines += ["", significance_text(report), account_text(info)]
    return "\n".join(lines)


def account_text(info: dict[str, Any]) -> str:
    """The account a report's money figures are in: currency, balance, instrument, sizing, conversion."""
    account = info.get("account")
    if not account:
        return ""
    instrument = account["instrument"]
    what = (f"{instrument['symbol']} ({instrument['base']}/{instrument['quote']}, "
            f"{instrument['contract_size']:,.0f} units per lot)" if instrument["quote"] else "prices")
    return (f"  Account {account['currency']} {account['initial_balance']:,.0f} trading {what}; "
            f"sizing {account['sizing']}: {account['sizing_description']}; conversion {account['conversion']}.")


def significance_text(report: EvaluationReport) -> str:
    """How far the agent's Sharpe can be trusted, in two sentences."""
    agent = report.metrics["agent"]
    return (f"  Sharpe {number(agent['sharpe'], 2)}, 95% interval {interval(agent['sharpe_interval'])} "
            f"({report.info['sharpe_error_method']}); P(true Sharpe > 0) {probability(agent['psr_vs_zero'])}, "
            f"> buy-and-hold's {probability(agent['psr_vs_buy_and_hold'])}.\n"
            f"  Among {agent['null_policies']:,} random policies with its turnover ({agent['turnover']:.1%} of bars) "
            f"on the same bars and costs it ranks {percentile(agent['null_percentile'])} "
            f"(their median Sharpe {number(agent['null_median_sharpe'], 2)}, 95th percentile "
            f"{number(agent['null_p95_sharpe'], 2)}).")


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
