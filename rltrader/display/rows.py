"""The rows every renderer shows: each metric's label and format once, and the sets each view uses.

The evaluation table in the terminal, ``report.md``, the final tables of ``rltrader train``,
the Prefect summary artifact and ``rltrader compare`` all pick their rows here, so a
metric reads the same wherever a person meets it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rltrader.display.formatting import count, days, interval, minutes, money, number, percent, percentile, probability


@dataclass(frozen=True)
class Row:
    """One labelled figure: where it is found (a metric name or a record field) and how it is written."""

    key: str
    label: str
    show: Callable[[Any], str]
    short: str = ""  # the header of a narrow column; the label where empty

    @property
    def header(self) -> str:
        return self.short or self.label

    def of(self, source: Any) -> str:
        """The formatted figure of a metrics mapping or a record; empty where the mapping has no such
        figure at all (the agent-only rows in a buy-and-hold column), ``n/a`` where it is undefined."""
        if isinstance(source, dict):
            return self.show(source[self.key]) if self.key in source else ""
        return self.show(getattr(source, self.key))


METRICS: dict[str, Row] = {row.key: row for row in (
    Row("span_days", "Span", days),
    Row("steps", "Bars", count),
    Row("total_return", "Total return", percent, "return"),
    Row("cagr", "CAGR (spans of 90+ days)", percent, "CAGR"),
    Row("sharpe", "Sharpe", number),
    Row("sharpe_interval", "Sharpe 95% interval", interval, "95% interval"),
    Row("psr_vs_zero", "P(true Sharpe > 0)", probability, "P(SR>0)"),
    Row("psr_vs_buy_and_hold", "P(true Sharpe > buy-and-hold's)", probability, "P(SR>B&H)"),
    Row("null_percentile", "Rank among 1,000 random", percentile, "vs random"),
    Row("deflated_sharpe", "Deflated Sharpe (all looks)", probability, "deflated"),
    Row("edge_captured", "Edge captured (return / oracle's)", percent, "edge"),
    Row("sortino", "Sortino", number),
    Row("max_drawdown", "Max drawdown", percent, "max DD"),
    Row("calmar", "Calmar (spans of 90+ days)", number, "Calmar"),
    Row("trades", "Trades", count, "trades"),
    Row("win_rate", "Win rate", percent, "win"),
    Row("exposure", "Exposure", percent),
    Row("costs_paid", "Costs paid", money, "costs"),
)}
"""Every metric of :func:`rltrader.evaluation.metrics.compute_metrics` that a report shows."""


def metric_rows(*keys: str) -> tuple[Row, ...]:
    return tuple(METRICS[key] for key in keys)


HEADLINE = metric_rows("span_days", "steps", "total_return", "sharpe", "sharpe_interval", "psr_vs_zero",
                       "psr_vs_buy_and_hold", "null_percentile", "deflated_sharpe", "edge_captured", "max_drawdown",
                       "trades")
"""The terminal's best-model table: validation and test, agent and buy-and-hold."""
SUMMARY = (*HEADLINE, METRICS["costs_paid"])
"""The Prefect summary artifact (test split)."""
REPORT = tuple(METRICS.values())
"""``report.md``, per split."""
EVALUATION = metric_rows("total_return", "sharpe", "sharpe_interval", "psr_vs_zero", "null_percentile",
                         "edge_captured", "max_drawdown", "trades", "costs_paid")
"""``rltrader evaluate``: the agent and each baseline."""

COMPARISON: tuple[Row, ...] = (
    Row("total_time_seconds", "time", minutes),
    Row("total_timesteps", "timesteps", count),
    Row("early_stops", "early stops", str),
    Row("warm_starts", "warm starts", str),
    Row("validation_looks", "validation looks (selection, not a result)", count),
    Row("best_validation_score", "best validation score (of those looks)", number),
    Row("validation_sharpe", "validation Sharpe", number),
    Row("test_sharpe", "test Sharpe (one look)", number),
    Row("test_sharpe_interval", "test Sharpe 95% interval", interval),
    Row("test_edge_captured", "test edge captured", percent),
    Row("test_total_return", "test return", percent),
    Row("test_buy_and_hold_sharpe", "buy-and-hold test Sharpe", number),
)
"""``rltrader compare`` and benchmark mode: one method's figures (a ``MethodFigures`` record)."""


def split_columns(splits: Sequence[str]) -> list[tuple[str, str, str]]:
    """(header, split, who) for an agent-vs-buy-and-hold table over ``splits``."""
    return [(f"{'agent' if who == 'agent' else 'buy-and-hold'} {split}", split, who)
            for split in splits for who in ("agent", "buy_and_hold")]


__all__ = ["COMPARISON", "EVALUATION", "HEADLINE", "METRICS", "REPORT", "SUMMARY", "Row", "metric_rows",
           "split_columns"]
