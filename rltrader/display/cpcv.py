"""What a person reads of a CPCV: the closing sentences and markdown, and the picture of its paths.

The figures come from :mod:`rltrader.walkforward.cpcv_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.atomic import write_with
from rltrader.display.formatting import interval, number, percent, probability


def _quantile_text(quantiles: dict[str, float] | None, digits: int = 2) -> str:
    if not quantiles:
        return "n/a"
    return ", ".join(f"{key} {number(value, digits)}" for key, value in quantiles.items())


def cpcv_lines(figures: dict[str, Any]) -> list[str]:
    """The CPCV's aggregate in sentences: the terminal's closing lines and the body of the UI's artifact."""
    if not figures.get("paths"):
        return [f"CPCV: {figures['runs']} of {figures['splits'] * len(figures['seeds'])} split runs finished; "
                "no path is complete yet."]
    hold = figures["buy_and_hold"]
    median = figures["median_path"]
    lines = [
        f"{figures['paths']} out-of-sample paths of {figures['path_bars']:,} bars (CPCV, {figures['groups']} groups, "
        f"{figures['test_groups']} tested per split, {figures['splits']} splits x {len(figures['seeds'])} seeds). "
        f"Agent path Sharpe (mean of seeds) quantiles: {_quantile_text(figures['path_sharpe_quantiles'])}; "
        f"buy-and-hold on the same bars {number(hold['sharpe'], 2)} (return {percent(hold['total_return'])}).",
        f"The agent's Sharpe beats buy-and-hold's on {figures['p_beats_buy_and_hold']:.0%} of paths x seeds. "
        f"Median path: Sharpe {number(median['sharpe'], 2)}"
        f"{'' if not median.get('sharpe_ci') else ' ' + interval(median['sharpe_ci'])}, return "
        f"{percent(median['total_return'])}; its deflated "
        f"Sharpe {probability(figures['deflated_sharpe'])} over {figures['trials']} trials (every validation look "
        "of every split and seed).",
    ]
    seeds = figures.get("seed_median_path_sharpes") or {}
    if len(seeds) > 1:
        lines.append("Seeds' median path Sharpe: " + ", ".join(f"{seed} {number(value, 2)}" for seed, value in
                                                                 seeds.items())
                     + f" (sd {number(figures['seed_sd_of_median_path_sharpe'], 2)}).")
    if overfitting := figures.get("seed_overfitting"):
        lines.append(f"Picking a seed by its backtest: probability of overfitting {overfitting['pbo']:.2f} over "
                     f"{overfitting['trials']} seeds (CSCV, {overfitting['blocks']} blocks of every tested bar); about "
                     "0.5 means the seeds differ by luck.")
    if figures.get("path_edge_captured"):
        lines.append("Share of the oracle's Sharpe captured per path: "
                     f"{_quantile_text(figures['path_edge_captured'])}.")
    return lines


def cpcv_markdown(name: str, figures: dict[str, Any], planned: int) -> str:
    """The CPCV's aggregate as the UI's markdown artifact."""
    return "\n".join([f"# CPCV {name}", "", f"{figures['runs']} of {planned} split runs finished.", "",
                      *cpcv_lines(figures)])


def plot_paths(returns: pd.DataFrame, figures: dict[str, Any], title: str, target: Path) -> None:
    """Left: every path's equity (agent, mean of seeds) and buy-and-hold's; right: the path Sharpes' histogram
    with buy-and-hold's Sharpe on the same bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (curves, spread) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [2.2, 1]})
    if len(returns):
        for number_, (_, path) in enumerate(returns.groupby("path", sort=True)):
            curves.plot(path["timestamp"].to_numpy(), np.cumprod(1.0 + path["agent"].to_numpy()), color="tab:blue",
                        linewidth=0.7, alpha=0.6, label="agent, each path" if number_ == 0 else None)
        first = returns[returns["path"] == 0]
        curves.plot(first["timestamp"].to_numpy(), np.cumprod(1.0 + first["buy_and_hold"].to_numpy()),
                    color="tab:orange", linewidth=1.2, label="buy and hold (every path)")
        if "oracle" in first:
            curves.plot(first["timestamp"].to_numpy(), np.cumprod(1.0 + first["oracle"].to_numpy()),
                        color="tab:green", linewidth=0.8, label="oracle (planted edge)")
            curves.set_yscale("log")
        for boundary in first.loc[first["group"].diff().fillna(0) != 0, "timestamp"]:
            curves.axvline(boundary, color="black", linestyle=":", linewidth=0.7)
        sharpes = [value for value in figures.get("path_sharpes", []) if value is not None]
        by_seed = figures.get("path_sharpes_by_seed") or {}
        if len(sharpes) >= 12:
            spread.hist(sharpes, bins=min(20, len(sharpes) // 2), color="tab:blue", alpha=0.7,
                        label="agent paths (mean of seeds)")
            spread.set_ylabel("paths")
        else:  # a few paths: each one a point, a row per seed below the mean of seeds
            rows = [("mean of seeds", sharpes)] + ([(f"seed {seed}", values) for seed, values in by_seed.items()]
                                                   if len(by_seed) > 1 else [])
            for row, (_, values) in enumerate(rows):
                spread.plot(values, np.full(len(values), -row), "o" if row == 0 else "D", markersize=9 if row == 0
                            else 6, color="tab:blue" if row == 0 else "tab:purple", alpha=0.75)
            spread.set_yticks([-row for row in range(len(rows))], [label for label, _ in rows])
            spread.set_ylim(-len(rows) + 0.5, 0.5)
        spread.axvline(figures["buy_and_hold"]["sharpe"], color="tab:orange", linewidth=1.5, label="buy and hold")
        spread.set_xlabel("path Sharpe (annualized)")
        spread.legend(loc="lower left", fontsize=8)
        spread.set_title(f"path Sharpes: {figures['p_beats_buy_and_hold']:.0%} of paths x seeds\nbeat buy and hold's",
                         fontsize=10)
    curves.set_ylabel("growth of 1 (per path)")
    curves.legend(loc="upper left")
    curves.set_title(f"{title}: {figures.get('paths', 0)} paths, {figures['groups']} groups, "
                     f"{figures['test_groups']} tested per split", wrap=True)
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


__all__ = ["cpcv_lines", "cpcv_markdown", "plot_paths"]
