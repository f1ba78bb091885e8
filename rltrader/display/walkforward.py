"""What a person reads of a walk-forward: the fold table, the per-run line, the aggregate's sentences
and markdown, the stitched equity picture. The figures come from :mod:`rltrader.walkforward.report`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rltrader.atomic import write_with
from rltrader.display.formatting import interval, minutes, number, percent, probability
from rltrader.records import FoldOutcome


def sharpe_text(metrics: dict[str, Any]) -> str:
    """``1.23 [-0.40, 2.86]``: a Sharpe with its 95% interval."""
    bounds = metrics.get("sharpe_interval") or metrics.get("sharpe_ci")
    return number(metrics.get("sharpe"), 2) + ("" if bounds is None else f" {interval(bounds)}")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def fold_rows(outcomes: Sequence[FoldOutcome]) -> list[dict[str, Any]]:
    """The fold table: one row per fold and seed, in fold order (the UI's table artifact and the terminal's)."""
    rows = []
    for outcome in sorted(outcomes, key=lambda o: (o.fold, o.seed)):
        rows.append({
            ("fold" if outcome.groups is None else "split"): outcome.fold + 1, "seed": outcome.seed,
            **({"test groups": ", ".join(str(int(group["group"]) + 1) for group in outcome.groups)}
               if outcome.groups is not None else {}),
            "test from": outcome.test_start[:10], "test to": outcome.test_end[:10],
            "agent return": percent(outcome.agent["total_return"]),
            "agent Sharpe [95%]": sharpe_text(outcome.agent),
            "B&H return": percent(outcome.buy_and_hold["total_return"]),
            "B&H Sharpe [95%]": sharpe_text(outcome.buy_and_hold),
            "trades": outcome.agent.get("trades"),
            "edge": _share(outcome.edge_captured),
            "warm": "yes" if outcome.warm_started_from else "no",
            "timesteps": outcome.timesteps, "seconds": round(outcome.seconds, 1),
        })
    return rows


def aggregate_lines(figures: dict[str, Any], savings: dict[str, Any] | None) -> list[str]:
    """The aggregate in sentences: the terminal's closing lines and the body of the UI's artifact."""
    bh = figures.get("buy_and_hold") or {}
    stitched = {"sharpe": figures["stitched_sharpe"], "sharpe_ci": figures["stitched_sharpe_ci"]}
    lines = [f"Stitched out-of-sample Sharpe {sharpe_text(stitched)} (agent, mean of seeds) vs buy-and-hold "
             f"{sharpe_text(bh)}; return {percent(figures['stitched_return'])} vs {percent(bh.get('total_return'))} "
             f"over {figures['stitched_bars']:,} test bars.",
             f"Deflated Sharpe {probability(figures['deflated_sharpe'])} over {figures['trials']} trials (every "
             f"validation look of every fold and seed). Fold Sharpe mean {number(figures['fold_sharpe_mean'], 2)}, "
             f"sd {number(figures['fold_sharpe_sd'], 2)}; {_share(figures['fraction_beating_buy_and_hold'])} of "
             f"{figures['runs']} fold runs beat buy-and-hold's return."]
    if overfitting := figures.get("seed_overfitting"):
        lines.append(f"Picking a seed by its backtest: probability of overfitting {overfitting['pbo']:.2f} over "
                     f"{overfitting['trials']} seeds (CSCV, {overfitting['blocks']} blocks of the stitched test bars); "
                     "about 0.5 means the seeds differ by luck, so judge the mean of seeds, not the best one.")
    if "edge_captured_mean" in figures:
        lines.append(f"Edge captured: mean {_share(figures['edge_captured_mean'])}, positive in "
                     f"{_share(figures['fraction_capturing_edge'])} of fold runs.")
    if savings:
        lines.append(f"Warm-started folds: {savings['warm_timesteps']:,.0f} timesteps and {savings['warm_seconds']} s "
                     f"per run, against {savings['cold_timesteps']:,.0f} and {savings['cold_seconds']} s for the cold "
                     "first fold.")
    return lines


def aggregate_markdown(name: str, figures: dict[str, Any], planned: int, savings: dict[str, Any] | None) -> str:
    """The aggregate as the UI's markdown artifact."""
    return "\n".join([f"# Walk-forward {name}", "",
                      f"{figures['runs']} of {planned} runs finished ({figures['folds']} folds, seeds "
                      f"{', '.join(map(str, figures['seeds']))}).", "", *aggregate_lines(figures, savings)])


def plot_stitched(curves: pd.DataFrame, title: str, target: Path) -> None:
    """The stitched out-of-sample equity: each seed thin, their mean bold, the baselines, fold boundaries dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 5.5))
    time_axis = curves["timestamp"]
    for number_, column in enumerate(c for c in curves.columns if c.startswith("agent_seed_")):
        axis.plot(time_axis, curves[column], color="tab:blue", linewidth=0.6, alpha=0.45,
                  label="agent, each seed" if number_ == 0 else None)
    axis.plot(time_axis, curves["agent_equity"], color="tab:blue", linewidth=1.6, label="agent (mean of seeds)")
    axis.plot(time_axis, curves["buy_and_hold_equity"], color="tab:orange", linewidth=1.1, label="buy and hold")
    axis.plot(time_axis, curves["flat_equity"], color="grey", linewidth=0.8, label="flat")
    if "oracle_equity" in curves:
        axis.plot(time_axis, curves["oracle_equity"], color="tab:green", linewidth=0.8, label="oracle (planted edge)")
    for boundary in curves.loc[curves["fold"].diff().fillna(0) != 0, "timestamp"]:
        axis.axvline(boundary, color="black", linestyle=":", linewidth=0.7)
    axis.set_ylabel("equity")
    axis.set_title(title, wrap=True)  # a long title wraps inside the canvas (tight_layout makes room)
    axis.legend(loc="upper left")
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def fold_line(outcome: FoldOutcome, folds: int, finished: int, planned: int, eta_seconds: float | None) -> str:
    """The line printed when a fold x seed run finishes: its test window against buy-and-hold, its cost, the ETA.

    :param outcome: the finished run
    :param folds: the walk-forward's fold count
    :param finished: runs finished so far (this one included)
    :param planned: runs planned (folds x seeds)
    :param eta_seconds: the time the remaining runs should take (None before one was timed)
    """
    agent, hold = outcome.agent, outcome.buy_and_hold
    where = (f"Split {outcome.fold + 1}/{folds} seed {outcome.seed} (test groups "
             f"{', '.join(str(int(group['group']) + 1) for group in outcome.groups)}, {outcome.test_bars:,} bars)"
             if outcome.groups is not None else
             f"Fold {outcome.fold + 1}/{folds} seed {outcome.seed} ({outcome.test_start[:10]} to "
             f"{outcome.test_end[:10]})")
    return (f"{where}: test Sharpe {number(agent['sharpe'], 2)} vs buy-and-hold "
            f"{number(hold['sharpe'], 2)}, return {percent(agent['total_return'])} vs {percent(hold['total_return'])}; "
            f"{outcome.timesteps:,} timesteps in {outcome.seconds:.0f} s. {finished} of {planned} "
            f"runs done" + ("" if finished == planned or eta_seconds is None else f", ETA {minutes(eta_seconds)}"))


__all__ = ["aggregate_lines", "aggregate_markdown", "fold_line", "fold_rows", "plot_stitched", "sharpe_text"]
