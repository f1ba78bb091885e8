"""The figures that judge a trained model, kept with it: the trust report in its bundle (``bundle.json``'s ``trust``).

A model travels (``rltrader export``, a registry version, a paper account, MetaTrader 5) without the run
that made it, so what says how far to trust it travels too:

- **test**: the agent's and buy-and-hold's Sharpe with their 95% intervals, and the return, on the test
  split, seen once;
- **selection**: how many validation looks chose the model, and its validation Sharpe deflated by them;
- **cost stress**: the test split again at :data:`STRESS_SPREAD` times every bar's spread (the agent and
  buy-and-hold alike): an edge that lives in the spread is no edge;
- **parity**: the bundle's own live decision stream (:class:`~rltrader.live.stream.DecisionStream`) over
  the whole test split, from the bundle's warm-up, against the evaluator's actions and final equity:
  what runs live is what was tested;
- **study** (when ``rltrader tune`` chose the config): the study's probability of backtest overfitting and
  the pick's deflated Sharpe over its trials;
- **cpcv** (when a CPCV of the same bars and config file was run beside it): its path distribution.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rltrader.bundle import Bundle
from rltrader.config import FOLD_PROFILE_OF_OLD_PLANS, Config
from rltrader.env import MarketData
from rltrader.evaluation.report import EvaluationReport, evaluate_model
from rltrader.features.preparation import PreparedData
from rltrader.live.bars import read_bar_file
from rltrader.live.stream import DecisionStream

logger = logging.getLogger(__name__)

STRESS_SPREAD = 2.0
OVERFITTING_FILE = "overfitting.json"  # what rltrader tune writes beside best_config.yaml


def _policy(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    return {key: metrics.get(key) for key in ("sharpe", "sharpe_interval", "total_return", "max_drawdown", "trades")
            if key in metrics}


def split_figures(report: EvaluationReport) -> dict[str, Any]:
    """The agent's and the baselines' Sharpe with intervals and returns on one split, and its dates."""
    return {"start": str(report.info.get("start")), "end": str(report.info.get("end")),
            "bars": int(report.ledgers["agent"].steps), "agent": _policy(report.metrics["agent"]),
            "buy_and_hold": _policy(report.metrics.get("buy_and_hold")),
            "oracle": _policy(report.metrics.get("oracle"))}


def selection_figures(validation: EvaluationReport) -> dict[str, Any]:
    """How many looks chose the model, and its validation Sharpe deflated by them (not a result: it selected)."""
    agent = validation.metrics["agent"]
    return {"trials": agent.get("trials"), "validation_sharpe": agent.get("sharpe"),
            "deflated_sharpe": agent.get("deflated_sharpe")}


def cost_stress(model: Any, prepared: PreparedData, config: Config, data_path: Path, seed: int,
                evaluator: str) -> dict[str, Any]:
    """The test split again with every bar's spread times :data:`STRESS_SPREAD`, for the agent and the baselines."""
    market = MarketData.from_prepared(prepared, config, data_path, spread_multiplier=STRESS_SPREAD)
    report = evaluate_model(model, market, "test", config.env, seed=seed, evaluator=evaluator)  # type: ignore[arg-type]
    return {"spread_multiplier": STRESS_SPREAD, **split_figures(report)}


def stream_parity(bundle: Bundle, data_path: Path, market: MarketData, test: EvaluationReport) -> dict[str, Any]:
    """The bundle's live stream over the whole test split against the evaluator's decisions and final equity.

    :param bundle: the model's bundle (what runs live)
    :param data_path: the bar file the model trained on
    :param market: the run's market (its timestamps place the test split in the file)
    :param test: the evaluator's report on the test split
    """
    started = time.perf_counter()
    bars = read_bar_file(data_path, bundle.description, need_history=False).bars
    agent = test.ledgers["agent"]
    stamp = int(market.timestamps[test.first_bar].astype(np.int64))
    first = int(np.searchsorted(bars.timestamps, stamp))  # the file row of the first decision
    steps = agent.steps
    warmup = bundle.description.warmup_bars
    if first + steps >= len(bars) or bars.timestamps[first] != stamp:
        return {"checked": False, "why": f"{data_path} no longer holds the test split's bars"}
    if first < warmup:
        return {"checked": False, "why": f"the file holds {first} bars before the test split, the bundle's warm-up "
                                         f"needs {warmup}"}
    stream = DecisionStream(bundle)
    stream.advance(bars.rows(first - warmup, first))
    batch = stream.advance(bars.rows(first, first + steps + 1))
    streamed = batch.actions[:steps].astype(np.int64)
    mismatches = np.flatnonzero(streamed != agent.actions)
    final, stream_final = float(agent.equity[-1]), float(batch.equity[steps])
    return {"checked": True, "bars": int(steps), "action_mismatches": int(len(mismatches)),
            "first_mismatch": None if not len(mismatches) else str(np.datetime64(int(batch.timestamps[mismatches[0]]),
                                                                                 "ns")),
            "evaluator_final_equity": final, "stream_final_equity": stream_final,
            "equity_rel_diff": abs(stream_final - final) / abs(final) if final else None,
            "warmup_bars": warmup, "seconds": round(time.perf_counter() - started, 3),
            "reference": "the fast evaluator's actions and ledger on the test split"}


def config_file_key(config_file: str | None) -> str | None:
    """How a run and a CPCV name the config file they share (its resolved path; None: the default config)."""
    return None if config_file is None else str(Path(config_file).resolve())


def study_of(config_file: str | None) -> str | None:
    """The tune study whose ``best_config.yaml`` ``config_file`` is (its ``overfitting.json`` beside it), else None."""
    if config_file is None:
        return None
    path = Path(config_file)
    chosen = path.name == "best_config.yaml" and (path.parent / OVERFITTING_FILE).is_file()
    return str(path.parent.resolve()) if chosen else None


def study_figures(study_dir: Path) -> dict[str, Any] | None:
    """A tune study's probability of backtest overfitting and its pick's deflated Sharpe (``overfitting.json``)."""
    path = Path(study_dir) / OVERFITTING_FILE
    if not path.is_file():
        return None
    figures = json.loads(path.read_text(encoding="utf-8")) or {}
    if not figures:  # fewer than two trials kept returns to compare
        return {"study": str(study_dir), "pbo": None}
    keep = ("pbo", "trials", "bars", "blocks", "splits", "p_oos_loss", "slope", "pick")
    return {"study": str(study_dir), **{key: figures[key] for key in keep if key in figures}}


def cpcv_figures(results_dir: Path, data_sha256: str, config_file: str | None) -> dict[str, Any] | None:
    """The newest CPCV in ``results_dir`` run on the same bars with the same config file: its path distribution."""
    found = []
    for summary_path in Path(results_dir).glob("walkforward-*/summary.json"):
        plan_path = summary_path.parent / "plan.json"
        try:
            summary, plan = (json.loads(path.read_text(encoding="utf-8")) for path in (summary_path, plan_path))
        except (OSError, ValueError):
            continue
        figures = summary.get("aggregate") or {}
        if (figures.get("scheme") == "cpcv" and plan.get("data_sha256") == data_sha256
                and plan.get("config_file") == config_file):
            found.append((summary_path.stat().st_mtime, summary_path.parent, figures, plan))
    if not found:
        return None
    _, root, figures, plan = max(found, key=lambda item: item[0])
    keep = ("groups", "test_groups", "splits", "paths", "seeds", "path_sharpe_quantiles", "p_beats_buy_and_hold",
            "buy_and_hold", "seed_overfitting", "path_edge_captured")
    profile = plan.get("profile", FOLD_PROFILE_OF_OLD_PLANS)  # the runs' budget: "none" is train's own
    return {"walkforward": str(root), "profile": profile, **{key: figures[key] for key in keep if key in figures}}


__all__ = ["STRESS_SPREAD", "config_file_key", "cost_stress", "cpcv_figures", "selection_figures", "split_figures",
           "stream_parity", "study_figures", "study_of"]
