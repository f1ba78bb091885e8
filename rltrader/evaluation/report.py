"""Evaluate a model on one split against baselines, and write the report files.

Every policy, the agent and the baselines alike, trades the same bars under the same
costs and is scored by the same ledger: buy-and-hold is "long from the first fill to the
end", flat never trades, and on a known-answer market (:mod:`rltrader.data.synthetic`) the
oracle trades the planted edge, so the agent's share of it ("edge captured": the agent's
return over the oracle's) is known. Luck gets its own yardstick: a thousand random
policies with the agent's turnover, and the agent's percentile among them
(:mod:`rltrader.evaluation.significance`, which also gives every Sharpe its interval).
Outputs (all written atomically): ``metrics.json``, ``equity.parquet`` and ``equity.png``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from rltrader.atomic import write_json, write_with
from rltrader.config import EnvConfig
from rltrader.data.synthetic import oracle_actions
from rltrader.env import FLAT, MarketData, evaluation_config
from rltrader.env.market import ACTION_NAMES
from rltrader.env.trading_env import EpisodeBounds
from rltrader.errors import ConfigError
from rltrader.evaluation.fast import fast_actions
from rltrader.evaluation.ledger import Ledger, replay
from rltrader.evaluation.metrics import compute_metrics, drawdown_curve
from rltrader.evaluation.reference import reference_actions
from rltrader.evaluation.significance import (
    NULL_POLICIES,
    SHARPE_ERROR_METHOD,
    SharpeEstimate,
    deflated_sharpe,
    null_distribution,
    probabilistic_sharpe,
    turnover,
)

logger = logging.getLogger(__name__)

LONG = ACTION_NAMES.index("long")
BASELINES = ("buy_and_hold", "flat")
ORACLE = "oracle"


def baseline_actions(name: str, steps: int) -> np.ndarray:
    """Actions of a baseline policy over ``steps`` decisions."""
    if name == "buy_and_hold":
        return np.full(steps, LONG, dtype=np.int64)
    if name == "flat":
        return np.full(steps, FLAT, dtype=np.int64)
    raise ValueError(f"unknown baseline {name!r}; use one of {', '.join(BASELINES)}")


def edge_captured(agent: dict[str, Any], oracle: dict[str, Any] | None) -> float | None:
    """The agent's return as a share of the oracle's (None without an oracle, or one that lost)."""
    if oracle is None or not oracle["total_return"] > 0:
        return None
    return float(agent["total_return"] / oracle["total_return"])


def significance(market: MarketData, first_bar: int, ledgers: dict[str, Ledger], metrics: dict[str, dict[str, Any]],
                 initial_balance: float, seed: int, trials: int | None) -> dict[str, Any]:
    """The agent's figures that say how much its Sharpe means (added to its metrics)."""
    agent, scores = ledgers["agent"], metrics["agent"]
    low, high = scores["sharpe_interval"] or (None, None)  # compute_metrics estimated it already
    estimate = SharpeEstimate(scores["sharpe"], scores["sharpe_se"], low, high, agent.steps)
    agent_turnover = turnover(agent.actions)
    null = null_distribution(market, first_bar, agent.steps, initial_balance, agent_turnover, NULL_POLICIES, seed)
    figures = {
        "psr_vs_zero": probabilistic_sharpe(estimate, 0.0),
        "psr_vs_buy_and_hold": probabilistic_sharpe(estimate, metrics["buy_and_hold"]["sharpe"]),
        "turnover": agent_turnover,
        "null_policies": NULL_POLICIES,
        "null_percentile": null.percentile(metrics["agent"]["sharpe"]),
        "null_median_sharpe": null.quantile(0.5),
        "null_p95_sharpe": null.quantile(0.95),
    }
    if ORACLE in metrics:  # a known-answer market: what share of the planted edge the agent took
        figures["edge_captured"] = edge_captured(metrics["agent"], metrics[ORACLE])
    if trials is not None:
        figures["trials"] = trials
        figures["deflated_sharpe"] = deflated_sharpe(estimate, trials)
    return figures


@dataclass
class EvaluationReport:
    """Metrics and ledgers of the agent and the baselines on one split."""

    split: str
    first_bar: int
    ledgers: dict[str, Ledger]
    metrics: dict[str, dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.info, "agent": self.metrics["agent"],
                "baselines": {name: self.metrics[name] for name in BASELINES if name in self.metrics},
                ORACLE: self.metrics.get(ORACLE)}


def oracle_metrics(market: MarketData, split: str, config: EnvConfig) -> dict[str, Any] | None:
    """The oracle's metrics on ``split`` of a known-answer market (None for any other), through the same ledger,
    without baselines or the null distribution: what a caller inside a training process needs (the null
    distribution's parallel kernel leaves a thread pool behind that slows the training around it)."""
    if market.known_answer is None:
        return None
    bounds = EpisodeBounds.whole(market, split, evaluation_config(config))
    actions = oracle_actions(market.known_answer, market.timestamps, market.close, market.trade_cost, bounds.first,
                             bounds.last - bounds.first)
    return compute_metrics(replay(market, bounds.first, actions, config.initial_balance), market, bounds.first)


def evaluate_actions(
    market: MarketData, split: str, config: EnvConfig, agent_actions: np.ndarray, seed: int,
    info: dict[str, Any] | None = None, trials: int | None = None,
) -> EvaluationReport:
    """Score ``agent_actions`` (one per bar of the split), the baselines and (on a known-answer
    market) the oracle on the same bars; ``seed`` seeds the random policies of the null
    distribution; ``trials``, where the split selected the model, is how many looks it had."""
    bounds = EpisodeBounds.whole(market, split, evaluation_config(config))
    steps = bounds.last - bounds.first
    ledgers = {"agent": replay(market, bounds.first, agent_actions, config.initial_balance)}
    for name in BASELINES:
        ledgers[name] = replay(market, bounds.first, baseline_actions(name, steps), config.initial_balance)
    if market.known_answer is not None:
        oracle = oracle_actions(market.known_answer, market.timestamps, market.close, market.trade_cost,
                                bounds.first, steps)
        ledgers[ORACLE] = replay(market, bounds.first, oracle, config.initial_balance)
    metrics = {name: compute_metrics(ledger, market, bounds.first) for name, ledger in ledgers.items()}
    metrics["agent"].update(significance(market, bounds.first, ledgers, metrics, config.initial_balance, seed,
                                         trials))
    start, end = ledgers["agent"].timestamps[[0, -1]]
    header = {
        "split": split,
        "start": str(pd.Timestamp(start)),
        "end": str(pd.Timestamp(end)),
        "bars": steps,
        "bars_per_year": market.bars_per_year,
        "null_seed": seed,
        "sharpe_error_method": SHARPE_ERROR_METHOD,
        "known_answer": None if market.known_answer is None else market.known_answer.model_dump(),
        "costs": {"spread": market.spread_source, "swap_long": market.swap_long, "swap_short": market.swap_short},
        "initial_balance": config.initial_balance,
        "account": {**market.terms.to_json(), "initial_balance": config.initial_balance},
    }
    return EvaluationReport(split, bounds.first, ledgers, metrics, {**header, **(info or {})})


def policy_actions(model: Any, market: MarketData, split: str, config: EnvConfig,
                   evaluator: Literal["fast", "reference"]) -> np.ndarray:
    """The model's deterministic actions over ``split`` from the chosen evaluator (same actions)."""
    if evaluator == "fast":
        return fast_actions([model], market, split, config)[0]
    return reference_actions(model, market, split, config)


def evaluate_model(
    model: Any, market: MarketData, split: str, config: EnvConfig, seed: int = 0,
    evaluator: Literal["fast", "reference"] = "fast", trials: int | None = None,
) -> EvaluationReport:
    """Run ``model`` deterministically over ``split`` and score it against the baselines.

    :param model: a (Recurrent)PPO model whose observation matches ``market`` and ``config``
    :param market: the prepared market
    :param split: the split to score on (``validation`` or ``test``)
    :param config: the environment's settings (its evaluation form: whole split, no drawdown stop)
    :param seed: seeds the reference evaluator's environment (the fast one draws nothing)
    :param evaluator: ``fast`` (compiled actor, same actions as ``model.predict``) or ``reference``
    :param trials: validation looks that selected ``model``, to deflate its Sharpe (None: not deflated)
    """
    expected = (config.window_size * market.n_features + 2,)
    if tuple(model.observation_space.shape) != expected:
        raise ConfigError(
            f"the model reads observations of {model.observation_space.shape[0]} values but env.window_size="
            f"{config.window_size} x {market.n_features} features + 2 gives {expected[0]}; "
            "evaluate with the configuration the model was trained with"
            + _older_features_hint(model.observation_space.shape[0], market.feature_columns, config.window_size))
    started = time.perf_counter()
    actions = policy_actions(model, market, split, config, evaluator)
    seconds = time.perf_counter() - started
    logger.info("Evaluated %d bars of %s with the %s evaluator in %.2fs", len(actions), split, evaluator, seconds)
    return evaluate_actions(market, split, config, actions, seed,
                            {"evaluator": evaluator, "evaluation_seconds": round(seconds, 3)}, trials)


_FEATURE_GENERATIONS = (
    ("move patterns", "move_patterns: 0", lambda name: name.startswith("pattern_")),
    ("calendar harmonics and signed volume", "calendar_harmonics: 1, signed_volume: false",
     lambda name: name == "signed_volume" or re.fullmatch(r".+_\d+_(sin|cos)", name) is not None),
)
"""Features added to the defaults since models were first saved, newest first: what a model trained before
each lacks, and the config keys that leave them out."""


def _older_features_hint(observed: int, columns: list[str], window_size: int) -> str:
    """What to put in the config when a model's observation is today's less the features added since it was
    trained (\"\" when it is not)."""
    missing, keys = 0, []
    for name, pin, added in _FEATURE_GENERATIONS:
        missing += sum(added(column) for column in columns)
        keys.append(pin)
        if (observed - 2) == window_size * (len(columns) - missing):
            return (f"; a model trained before {name} needs features: {{{', '.join(reversed(keys))}}} "
                    "in its config")
    return ""


def equity_frame(report: EvaluationReport) -> pd.DataFrame:
    """One row per bar: close, and equity (and the agent's position and drawdown) per policy."""
    agent = report.ledgers["agent"]
    frame = pd.DataFrame({"timestamp": agent.timestamps, "close": agent.close, "agent_equity": agent.equity,
                          "agent_position": agent.positions, "agent_drawdown": drawdown_curve(agent.equity)})
    for name in (*BASELINES, ORACLE):
        if name in report.ledgers:
            frame[f"{name}_equity"] = report.ledgers[name].equity
    frame["buy_and_hold_drawdown"] = drawdown_curve(report.ledgers["buy_and_hold"].equity)
    return frame


def plot_equity(frame: pd.DataFrame, title: str, target: Path) -> None:
    """Equity against the baselines, drawdown and position over the split, in one picture (its text inside it)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (equity_ax, drawdown_ax, position_ax) = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1]}
    )
    time_axis = frame["timestamp"]
    equity_ax.plot(time_axis, frame["agent_equity"], label="agent", color="tab:blue", linewidth=1.2)
    equity_ax.plot(time_axis, frame["buy_and_hold_equity"], label="buy and hold", color="tab:orange", linewidth=1)
    if "oracle_equity" in frame:
        equity_ax.plot(time_axis, frame["oracle_equity"], label="oracle (planted edge)", color="tab:green",
                       linewidth=0.8, alpha=0.8)
    equity_ax.set_ylabel("equity")
    equity_ax.legend(loc="upper left")
    equity_ax.set_title(title, wrap=True)  # a long title wraps inside the canvas (tight_layout makes room)
    drawdown_ax.fill_between(time_axis, -100 * frame["agent_drawdown"], 0, color="tab:blue", alpha=0.4, label="agent")
    drawdown_ax.plot(time_axis, -100 * frame["buy_and_hold_drawdown"], color="tab:orange", linewidth=0.8,
                     label="buy and hold")
    drawdown_ax.set_ylabel("drawdown %")
    position_ax.step(time_axis, frame["agent_position"], where="post", color="tab:blue", linewidth=0.8)
    position_ax.set_ylabel("position (units)")
    # day ticks counted from the first bar: matplotlib's default restarts its every-other-day
    # ticks at each month's 1st, which printed "03-31" and "04-01" on top of each other
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(interval_multiples=False)
    position_ax.xaxis.set_major_locator(locator)
    position_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def write_report(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``equity.parquet`` and ``equity.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    frame = equity_frame(report)
    paths = {"metrics": out_dir / "metrics.json", "equity": out_dir / "equity.parquet", "plot": out_dir / "equity.png"}
    write_with(paths["equity"], lambda tmp: frame.to_parquet(tmp, index=False))
    agent = report.metrics["agent"]
    title = (f"{report.split}: agent {100 * agent['total_return']:+.2f}% vs buy and hold "
             f"{100 * report.metrics['buy_and_hold']['total_return']:+.2f}%")
    if agent["sharpe_interval"] is not None:
        low, high = agent["sharpe_interval"]
        title += f"; agent Sharpe {agent['sharpe']:.2f} (95% interval {low:.1f} to {high:.1f})"
    if agent.get("edge_captured") is not None:
        title += f", edge captured {agent['edge_captured']:.0%}"
    plot_equity(frame, title, paths["plot"])
    write_json(paths["metrics"], report.to_json())
    return paths


__all__ = [
    "BASELINES",
    "EvaluationReport",
    "baseline_actions",
    "equity_frame",
    "evaluate_actions",
    "evaluate_model",
    "write_report",
]
