"""One CPCV split x seed: train on the split's training stretches, then score the best model on each test group.

The training is the real trainer (every optimization, checkpoints, resume) on the split's prepared
data, whose training rows are several stretches (:class:`~rltrader.env.trading_env.EpisodeBounds`
keeps every episode inside one). Its validation selects the best model as in any run. The test
groups are not one stretch, so the trainer's own final report (one test window) is not used:
the best model meets each test group once, as a market whose test split is that group, with the
same evaluator, baselines and costs as a fold's report (``report/test_group_G/``). A split whose
``cpcv_outcome.json`` exists is read back, never trained again, so a killed CPCV resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.atomic import write_json
from rltrader.evaluation.report import EvaluationReport, evaluate_model, write_report
from rltrader.evaluation.significance import sharpe_estimate
from rltrader.records import FoldOutcome
from rltrader.training.models import load_for_training
from rltrader.training.run_state import count_trials
from rltrader.training.trainer import Trainer
from rltrader.walkforward.looks import validation_curve

logger = logging.getLogger(__name__)

OUTCOME_FILE = "cpcv_outcome.json"
POLICIES = ("agent", "buy_and_hold", "flat", "oracle")


def group_dir(run_dir: Path, group: int) -> Path:
    """Where test group ``group`` (0-based)'s report goes: ``report/test_group_G`` with G counted from 1."""
    return Path(run_dir) / "report" / f"test_group_{group + 1}"


def group_returns(equity_path: Path) -> pd.DataFrame:
    """Per-bar returns of each policy over one test group (the first mark is where equity starts: no return)."""
    equity = pd.read_parquet(equity_path)
    names = [name for name in POLICIES if f"{name}_equity" in equity]
    returns = pd.DataFrame({name: equity[f"{name}_equity"].pct_change().to_numpy()[1:] for name in names})
    returns.insert(0, "timestamp", equity["timestamp"].to_numpy()[1:])
    return returns


def combined_figures(returns: pd.DataFrame, column: str, bars_per_year: float,
                     reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures over a split's test groups together: compounded return, Sharpe with its interval, trades."""
    estimate = sharpe_estimate(returns[column].to_numpy(), bars_per_year)
    figures: dict[str, Any] = {"total_return": float(np.prod(1.0 + returns[column].to_numpy()) - 1.0),
                               "sharpe": estimate.sharpe,
                               "sharpe_interval": None if estimate.low is None else [estimate.low, estimate.high]}
    trades = [report.get("trades") for report in reports]
    if all(value is not None for value in trades):
        figures["trades"] = int(sum(trades))
    return figures


def _policy_metrics(report: EvaluationReport, name: str) -> dict[str, Any]:
    keep = ("total_return", "sharpe", "sharpe_interval", "max_drawdown", "trades", "exposure", "costs_paid",
            "edge_captured")
    metrics = report.metrics.get(name)
    return {key: metrics.get(key) for key in keep if key in metrics} if metrics else {}


def score_test_groups(trainer: Trainer, test: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """The best model of ``trainer``'s run on each test group (``(group, start, stop)`` rows), each report written."""
    model = load_for_training(trainer.paths.best_model, trainer.env, trainer.training.seed)
    evaluator = "fast" if trainer.switches.fast_evaluation else "reference"
    groups = []
    for group, start, stop in test:
        market = dataclasses.replace(trainer.market, split_rows={**trainer.market.split_rows, "test": (start, stop)})
        report = evaluate_model(model, market, "test", trainer.config.env, seed=trainer.training.seed,
                                evaluator=evaluator)
        paths = write_report(report, group_dir(trainer.paths.root, group))
        agent = _policy_metrics(report, "agent")
        groups.append({"group": group, "rows": [start, stop], "start": str(report.ledgers["agent"].timestamps[0]),
                       "end": str(report.ledgers["agent"].timestamps[-1]), "bars": int(report.ledgers["agent"].steps),
                       "agent": agent, "buy_and_hold": _policy_metrics(report, "buy_and_hold"),
                       "oracle": _policy_metrics(report, "oracle") or None,
                       "edge_captured": agent.get("edge_captured"), "equity": str(paths["equity"])})
    return groups


def cpcv_outcome(split: int, seed: int, run_dir: Path, trainer: Trainer, groups: list[dict[str, Any]]) -> FoldOutcome:
    """The split x seed's outcome: its test groups together, and each one."""
    returns = pd.concat([group_returns(Path(group["equity"])) for group in groups], ignore_index=True)
    bars_per_year = trainer.market.bars_per_year
    state = trainer.state
    oracle = (combined_figures(returns, "oracle", bars_per_year, [g["oracle"] for g in groups])
              if "oracle" in returns else None)
    edges = [group["edge_captured"] for group in groups if group["edge_captured"] is not None]
    return FoldOutcome(
        fold=split, seed=seed, run_dir=str(run_dir), warm_started_from=None,
        test_start=groups[0]["start"], test_end=groups[-1]["end"], test_bars=int(sum(g["bars"] for g in groups)),
        agent=combined_figures(returns, "agent", bars_per_year, [g["agent"] for g in groups]),
        buy_and_hold=combined_figures(returns, "buy_and_hold", bars_per_year, [g["buy_and_hold"] for g in groups]),
        oracle=oracle, edge_captured=float(np.mean(edges)) if edges else None,
        best_validation=state.best.score if state.best is not None else None, looks=count_trials(state.iterations),
        timesteps=sum(record.timesteps for record in state.iterations),
        seconds=round(state.preprocess_seconds + sum(record.wall_seconds for record in state.iterations), 3),
        curve=validation_curve(state), groups=groups)


def finished_split(run_dir: Path) -> FoldOutcome | None:
    """The outcome of a split x seed finished before (a resumed CPCV reads it back), else None."""
    path = Path(run_dir) / OUTCOME_FILE
    if not path.is_file():
        return None
    return FoldOutcome.model_validate(json.loads(path.read_text(encoding="utf-8")))


def run_cpcv_split(split: int, seed: int, trainer: Trainer, test: list[tuple[int, int, int]]) -> FoldOutcome:
    """Train (or resume) the split's run, score its best model on each test group, write its outcome.

    :param split: the split's number (0-based)
    :param seed: the run's seed
    :param trainer: the run's trainer (its prepared data is the split's)
    :param test: ``(group, start, stop)`` of each test group, rows of the split's prepared data
    """
    run_dir = trainer.paths.root
    done = finished_split(run_dir)
    if done is not None:
        return done
    trainer.train()
    if trainer.state.best is None:
        raise RuntimeError(f"{run_dir}: no model was kept; nothing to score")
    outcome = cpcv_outcome(split, seed, run_dir, trainer, score_test_groups(trainer, test))
    write_json(run_dir / OUTCOME_FILE, outcome.model_dump(mode="json"))
    return outcome


__all__ = ["OUTCOME_FILE", "combined_figures", "cpcv_outcome", "finished_split", "group_dir", "group_returns",
           "run_cpcv_split", "score_test_groups"]
