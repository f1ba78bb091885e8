"""A CPCV's results: its test groups assembled into full out-of-sample paths, their Sharpe distribution, the files.

Every split x seed scored its best model on each of its test groups; path ``j`` takes group g's
bars from the j-th split that tested g (:func:`rltrader.walkforward.cpcv.path_assignment`), so each
path is a backtest over every group, out of sample on every bar, and the paths differ in which
models traded which groups. What the distribution says that one walk-forward cannot: how much of a
backtest's Sharpe is the luck of one path. Buy-and-hold trades the same bars with the same costs
on every path (its path Sharpe is one number); the agent's paths are compared with it one by one.

What a person reads of it (the sentences, the picture) is drawn by :mod:`rltrader.display.cpcv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.atomic import write_with
from rltrader.display.cpcv import plot_paths
from rltrader.evaluation.overfitting import DEFAULT_BLOCKS, probability_of_backtest_overfitting
from rltrader.evaluation.significance import deflated_sharpe, sharpe_estimate
from rltrader.records import FoldOutcome, WalkForwardSummary
from rltrader.walkforward.cpcv_runs import group_returns
from rltrader.walkforward.report import write_summary

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BASELINES = ("buy_and_hold", "flat", "oracle")


def testers(outcomes: Sequence[FoldOutcome]) -> dict[int, list[int]]:
    """Per group, the splits that tested it, in split order (their j-th feeds path j)."""
    tested: dict[int, set[int]] = {}
    for outcome in outcomes:
        for group in outcome.groups or []:
            tested.setdefault(int(group["group"]), set()).add(outcome.fold)
    return {group: sorted(splits) for group, splits in sorted(tested.items())}


def path_returns(outcomes: Sequence[FoldOutcome]) -> pd.DataFrame:
    """Per bar of every path in time order: each seed's agent return, their mean, and the baselines.

    Only complete paths: every group's split finished for every seed (a CPCV still training has fewer)."""
    seeds = sorted({outcome.seed for outcome in outcomes})
    by_key = {(outcome.fold, outcome.seed): outcome for outcome in outcomes}
    tested = testers(outcomes)
    if not tested:
        return pd.DataFrame()
    groups = max(tested) + 1
    per_group = [len(tested.get(group, [])) for group in range(groups)]
    expected = max(per_group)
    pieces = []
    for path in range(expected):
        blocks = []
        for group in range(groups):
            splits = tested.get(group, [])
            if len(splits) != expected or any((splits[path], seed) not in by_key for seed in seeds):
                blocks = []
                break
            seed_blocks = {seed: _group_block(by_key[(splits[path], seed)], group) for seed in seeds}
            block = seed_blocks[seeds[0]].drop(columns=["agent"])
            for seed in seeds:
                block[f"agent_seed_{seed}"] = seed_blocks[seed]["agent"].to_numpy()
            block["agent"] = block[[f"agent_seed_{seed}" for seed in seeds]].mean(axis=1)
            block.insert(1, "group", group)
            block.insert(2, "split", splits[path])
            blocks.append(block)
        if blocks:
            piece = pd.concat(blocks, ignore_index=True)
            piece.insert(1, "path", path)
            pieces.append(piece)
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()


def _group_block(outcome: FoldOutcome, group: int) -> pd.DataFrame:
    entry = next(entry for entry in outcome.groups or [] if int(entry["group"]) == group)
    return group_returns(Path(entry["equity"]))


def _quantiles(values: Sequence[float]) -> dict[str, float] | None:
    finite = np.asarray([value for value in values if value is not None and np.isfinite(value)], dtype=float)
    if not len(finite):
        return None
    return {f"{int(round(100 * q))}%": float(np.quantile(finite, q)) for q in QUANTILES}


def _path_figures(returns: pd.DataFrame, column: str, bars_per_year: float) -> list[dict[str, Any]]:
    figures = []
    for _, path in returns.groupby("path", sort=True):
        values = path[column].to_numpy()
        estimate = sharpe_estimate(values, bars_per_year)
        figures.append({"sharpe": estimate.sharpe, "sharpe_ci": None if estimate.low is None else [estimate.low,
                                                                                                   estimate.high],
                        "total_return": float(np.prod(1.0 + values) - 1.0)})
    return figures


def seed_block_matrix(outcomes: Sequence[FoldOutcome]) -> np.ndarray | None:
    """Every tested bar once per (split, group) block, one column per seed: what picking a seed is judged on."""
    seeds = sorted({outcome.seed for outcome in outcomes})
    if len(seeds) < 2:
        return None
    by_key = {(outcome.fold, outcome.seed): outcome for outcome in outcomes}
    columns: dict[int, list[np.ndarray]] = {seed: [] for seed in seeds}
    for split in sorted({outcome.fold for outcome in outcomes}):
        if any((split, seed) not in by_key for seed in seeds):
            continue
        for group in by_key[(split, seeds[0])].groups or []:
            for seed in seeds:
                columns[seed].append(_group_block(by_key[(split, seed)], int(group["group"]))["agent"].to_numpy())
    if not columns[seeds[0]]:
        return None
    return np.column_stack([np.concatenate(columns[seed]) for seed in seeds])


def cpcv_aggregate(outcomes: Sequence[FoldOutcome], returns: pd.DataFrame, bars_per_year: float, groups: int,
                   test_groups: int) -> dict[str, Any]:
    """The path distribution against buy-and-hold on the same paths, the seeds' spread, and what was tried."""
    seeds = sorted({outcome.seed for outcome in outcomes})
    looks = sum(outcome.looks for outcome in outcomes)
    figures: dict[str, Any] = {
        "scheme": "cpcv", "groups": groups, "test_groups": test_groups, "splits": comb(groups, test_groups),
        "paths_planned": comb(groups - 1, test_groups - 1), "runs": len(outcomes),
        "folds": len({outcome.fold for outcome in outcomes}), "seeds": seeds, "trials": looks,
        "timesteps": sum(outcome.timesteps for outcome in outcomes),
        "train_seconds": round(sum(outcome.seconds for outcome in outcomes), 1),
        "paths": int(returns["path"].nunique()) if len(returns) else 0,
    }
    if not len(returns):
        return figures
    agent = _path_figures(returns, "agent", bars_per_year)
    hold = _path_figures(returns, "buy_and_hold", bars_per_year)
    by_seed = {seed: _path_figures(returns, f"agent_seed_{seed}", bars_per_year) for seed in seeds}
    beats = [by_seed[seed][index]["sharpe"] > hold[index]["sharpe"] for seed in seeds for index in range(len(hold))]
    median_index = int(np.argsort([path["sharpe"] for path in agent])[len(agent) // 2])
    figures.update({
        "path_bars": int(len(returns) / figures["paths"]),
        "path_sharpes": [path["sharpe"] for path in agent],
        "path_sharpe_quantiles": _quantiles([path["sharpe"] for path in agent]),
        "path_return_quantiles": _quantiles([path["total_return"] for path in agent]),
        "path_sharpes_by_seed": {str(seed): [path["sharpe"] for path in paths] for seed, paths in by_seed.items()},
        "buy_and_hold_path_sharpes": [path["sharpe"] for path in hold],
        "buy_and_hold": hold[0],
        "p_beats_buy_and_hold": float(np.mean(beats)),
        "seed_median_path_sharpes": {str(seed): float(np.median([p["sharpe"] for p in paths]))
                                     for seed, paths in by_seed.items()},
        "median_path": {"path": median_index, **agent[median_index]},
    })
    medians = list(figures["seed_median_path_sharpes"].values())
    figures["seed_sd_of_median_path_sharpe"] = float(np.std(medians, ddof=1)) if len(medians) > 1 else None
    median = sharpe_estimate(returns.loc[returns["path"] == median_index, "agent"].to_numpy(), bars_per_year)
    figures["deflated_sharpe"] = deflated_sharpe(median, looks) if looks else None  # the median path's
    if "oracle" in returns:
        oracle = _path_figures(returns, "oracle", bars_per_year)
        figures["oracle"] = oracle[0]
        figures["oracle_path_sharpes"] = [path["sharpe"] for path in oracle]
        figures["path_edge_captured"] = _quantiles([a["sharpe"] / o["sharpe"] for a, o in zip(agent, oracle,
                                                                                            strict=True)
                                                    if o["sharpe"]])
    matrix = seed_block_matrix(outcomes)
    if matrix is not None and len(matrix) >= 2 * DEFAULT_BLOCKS:
        figures["seed_overfitting"] = probability_of_backtest_overfitting(matrix).to_json()
    edges = [outcome.edge_captured for outcome in outcomes if outcome.edge_captured is not None]
    if edges:
        figures["edge_captured_mean"] = float(np.mean(edges))
    return figures


def write_cpcv_results(root: Path, name: str, outcomes: Sequence[FoldOutcome], bars_per_year: float,
                       planned: int, groups: int, test_groups: int,
                       account: dict[str, Any] | None = None) -> WalkForwardSummary:
    """Write ``folds.json``, ``cpcv_paths.parquet``, ``cpcv_paths.png`` and ``summary.json``; return the summary."""
    returns = path_returns(outcomes)
    figures = cpcv_aggregate(outcomes, returns, bars_per_year, groups, test_groups)
    write_with(root / "cpcv_paths.parquet", lambda tmp: returns.to_parquet(tmp, index=False))
    plot_paths(returns, figures, f"CPCV {name}", root / "cpcv_paths.png")
    return write_summary(root, name, outcomes, planned, figures, {
        "paths": str(root / "cpcv_paths.parquet"), "plot": str(root / "cpcv_paths.png")}, account)


__all__ = ["cpcv_aggregate", "path_returns", "seed_block_matrix", "testers", "write_cpcv_results"]
