"""A walk-forward's results: the stitched out-of-sample equity, the aggregate, the files.

What a person reads of them (the fold table, the aggregate's sentences, the picture) is
drawn by :mod:`rltrader.display.walkforward`; the figures are computed here.

Each fold's best model met its own test window once; the test windows follow each other,
so chaining their per-bar returns gives one out-of-sample equity curve per seed, beside
buy-and-hold and flat over the same bars and costs (and the oracle on a known-answer
market). The seeds' curves are also averaged (equal capital in each seed's agent): the
"agent" line and the headline stitched Sharpe. Every Sharpe carries its 95% interval
(Newey-West, :mod:`rltrader.evaluation.significance`), and the headline is deflated by
every validation look of every fold and seed, the chances the walk-forward had to be lucky.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.atomic import write_json, write_with
from rltrader.display.walkforward import fold_rows, plot_stitched, sharpe_text
from rltrader.evaluation.overfitting import DEFAULT_BLOCKS, probability_of_backtest_overfitting
from rltrader.evaluation.significance import deflated_sharpe, sharpe_estimate
from rltrader.records import FoldOutcome, WalkForwardSummary

POLICIES = ("buy_and_hold", "flat", "oracle")


def _fold_returns(outcome: FoldOutcome) -> pd.DataFrame:
    """Per-bar returns of the fold's test window (the first bar is where equity starts: no return)."""
    equity = pd.read_parquet(outcome.equity_path)
    columns = ["agent_equity", *(f"{name}_equity" for name in POLICIES if f"{name}_equity" in equity)]
    returns = equity[columns].pct_change().iloc[1:]
    returns.columns = [column.removesuffix("_equity") for column in columns]
    returns.insert(0, "timestamp", equity["timestamp"].iloc[1:].to_numpy())
    returns.insert(1, "fold", outcome.fold)
    return returns.reset_index(drop=True)


def stitched_returns(outcomes: Sequence[FoldOutcome]) -> pd.DataFrame:
    """Per bar of every test window in time order: each seed's agent return, their mean, and the baselines."""
    seeds = sorted({outcome.seed for outcome in outcomes})
    folds = sorted({outcome.fold for outcome in outcomes})
    pieces = []
    for fold in folds:
        by_seed = {outcome.seed: _fold_returns(outcome) for outcome in outcomes if outcome.fold == fold}
        if set(by_seed) != set(seeds):
            continue  # still training: a fold joins the curve once every seed has tested it
        first = by_seed[seeds[0]]
        piece = first.drop(columns=["agent"])
        for seed in seeds:
            piece[f"agent_seed_{seed}"] = by_seed[seed]["agent"].to_numpy()
        piece["agent"] = piece[[f"agent_seed_{seed}" for seed in seeds]].mean(axis=1)
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def equity_curves(returns: pd.DataFrame, initial_balance: float) -> pd.DataFrame:
    """Equity paths from the stitched returns (every curve starts at ``initial_balance``)."""
    curves = returns[["timestamp", "fold"]].copy()
    for column in returns.columns.drop(["timestamp", "fold"]):
        curves[f"{column}_equity"] = initial_balance * np.cumprod(1.0 + returns[column].to_numpy())
    return curves


def _interval(estimate: Any) -> list[float] | None:
    return None if estimate.low is None else [estimate.low, estimate.high]


def aggregate(outcomes: Sequence[FoldOutcome], returns: pd.DataFrame, bars_per_year: float) -> dict[str, Any]:
    """Across folds and seeds: the spread of fold Sharpes, how often the agent beat buy-and-hold, the
    stitched figures."""
    sharpes = [outcome.agent["sharpe"] for outcome in outcomes if outcome.agent.get("sharpe") is not None]
    beat = [outcome.agent["total_return"] > outcome.buy_and_hold["total_return"] for outcome in outcomes]
    looks = sum(outcome.looks for outcome in outcomes)
    stitched = sharpe_estimate(returns["agent"].to_numpy(), bars_per_year)
    figures: dict[str, Any] = {
        "runs": len(outcomes),
        "folds": len({outcome.fold for outcome in outcomes}),
        "seeds": sorted({outcome.seed for outcome in outcomes}),
        "fold_sharpe_mean": float(np.mean(sharpes)) if sharpes else None,
        "fold_sharpe_sd": float(np.std(sharpes, ddof=1)) if len(sharpes) > 1 else None,
        "fraction_beating_buy_and_hold": float(np.mean(beat)) if beat else None,
        "stitched_bars": len(returns),
        "stitched_sharpe": stitched.sharpe,
        "stitched_sharpe_ci": _interval(stitched),
        "stitched_return": float(np.prod(1.0 + returns["agent"].to_numpy()) - 1.0),
        "trials": looks,
        "deflated_sharpe": deflated_sharpe(stitched, looks) if looks else None,
        "per_seed": {},
        "timesteps": sum(outcome.timesteps for outcome in outcomes),
        "train_seconds": round(sum(outcome.seconds for outcome in outcomes), 1),
    }
    for column in returns.columns.drop(["timestamp", "fold", "agent"]):
        estimate = sharpe_estimate(returns[column].to_numpy(), bars_per_year)
        entry = {"sharpe": estimate.sharpe, "sharpe_ci": _interval(estimate),
                 "total_return": float(np.prod(1.0 + returns[column].to_numpy()) - 1.0)}
        if column.startswith("agent_seed_"):
            figures["per_seed"][column.removeprefix("agent_seed_")] = entry
        else:
            figures[column] = entry
    seed_columns = [column for column in returns.columns if column.startswith("agent_seed_")]
    if len(seed_columns) > 1 and len(returns) >= 2 * DEFAULT_BLOCKS:
        # picking the seed whose agent did best on half the test bars: is it better on the other half?
        figures["seed_overfitting"] = probability_of_backtest_overfitting(
            returns[seed_columns].to_numpy()).to_json()
    edges = [outcome.edge_captured for outcome in outcomes if outcome.edge_captured is not None]
    if edges:
        figures["edge_captured_mean"] = float(np.mean(edges))
        figures["fraction_capturing_edge"] = float(np.mean([edge > 0 for edge in edges]))
    return figures


def warm_start_savings(outcomes: Sequence[FoldOutcome]) -> dict[str, Any] | None:
    """Warm-started folds against the cold first fold of the same seed: mean timesteps and seconds per run.

    The first fold is the only cold run a warm walk-forward has; ``bench/walkforward.py``
    measures warm against a cold walk-forward of the same folds side by side."""
    warm = [outcome for outcome in outcomes if outcome.warm_started_from]
    cold = [outcome for outcome in outcomes if not outcome.warm_started_from]
    if not warm or not cold:
        return None
    cold_steps, warm_steps = np.mean([o.timesteps for o in cold]), np.mean([o.timesteps for o in warm])
    cold_seconds, warm_seconds = np.mean([o.seconds for o in cold]), np.mean([o.seconds for o in warm])
    return {"basis": "warm-started folds vs the cold first fold, mean per run",
            "cold_timesteps": float(cold_steps), "warm_timesteps": float(warm_steps),
            "timesteps_saved_fraction": float(1.0 - warm_steps / cold_steps) if cold_steps else None,
            "cold_seconds": round(float(cold_seconds), 1), "warm_seconds": round(float(warm_seconds), 1),
            "seconds_saved_fraction": float(1.0 - warm_seconds / cold_seconds) if cold_seconds else None}


def write_results(root: Path, name: str, outcomes: Sequence[FoldOutcome], bars_per_year: float,
                  initial_balance: float, planned: int, account: dict[str, Any] | None = None) -> WalkForwardSummary:
    """Write ``folds.json``, ``stitched_equity.parquet``, ``stitched_equity.png`` and ``summary.json``
    (with ``account``, the terms every fold traded on); return the summary."""
    returns = stitched_returns(outcomes)
    curves = equity_curves(returns, initial_balance)
    figures = aggregate(outcomes, returns, bars_per_year)
    savings = warm_start_savings(outcomes)
    write_with(root / "stitched_equity.parquet", lambda tmp: curves.to_parquet(tmp, index=False))
    title = (f"walk-forward {name}: {figures['folds']} folds x {len(figures['seeds'])} seeds, stitched Sharpe "
             f"{sharpe_text({'sharpe': figures['stitched_sharpe'], 'sharpe_ci': figures['stitched_sharpe_ci']})} "
             f"vs buy and hold {sharpe_text(figures['buy_and_hold'])}")
    plot_stitched(curves, title, root / "stitched_equity.png")
    return write_summary(root, name, outcomes, planned, figures, {
        "stitched_equity": str(root / "stitched_equity.parquet"), "plot": str(root / "stitched_equity.png")},
        account, savings)


def write_summary(root: Path, name: str, outcomes: Sequence[FoldOutcome], planned: int, figures: dict[str, Any],
                  files: dict[str, str], account: dict[str, Any] | None = None,
                  savings: dict[str, Any] | None = None) -> WalkForwardSummary:
    """Write ``folds.json`` (every run's outcome) and ``summary.json`` (the aggregate ``figures``, the fold table,
    ``files``); return the summary. A walk-forward and a CPCV end here alike."""
    ordered = sorted(outcomes, key=lambda outcome: (outcome.fold, outcome.seed))
    write_json(root / "folds.json", [outcome.model_dump() for outcome in ordered])
    summary = WalkForwardSummary(
        name=name, planned_runs=planned, account=account, aggregate=figures, warm_start=savings,
        fold_table=fold_rows(outcomes), root=str(root), files={**files, "folds": str(root / "folds.json")})
    write_json(root / "summary.json", summary.to_json())
    return summary


__all__ = ["aggregate", "equity_curves", "stitched_returns", "warm_start_savings", "write_results", "write_summary"]
