"""Scoring a model on the validation split: the number that picks the best model.

The fast evaluator gives the same actions as ``model.predict`` bar by bar (tested) in a
fraction of the time, which is what makes evaluating often enough for early stopping
affordable; the original method uses the per-step reference evaluator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rltrader.config import EnvConfig
from rltrader.env import MarketData
from rltrader.env.trading_env import EpisodeBounds, evaluation_config
from rltrader.evaluation.ledger import Ledger, replay
from rltrader.evaluation.metrics import compute_metrics
from rltrader.evaluation.report import policy_actions

VALIDATION = "validation"


@dataclass(frozen=True)
class ValidationResult:
    score: float
    metrics: dict[str, Any]
    seconds: float


def score_of(metrics: dict[str, Any], metric: str) -> float:
    """The selection score; an undefined ratio (no variance: the agent never traded) scores 0."""
    value = metrics.get(metric)
    return 0.0 if value is None else float(value)


class Validator:
    """Evaluates models on the validation split with one evaluator and one metric."""

    def __init__(self, market: MarketData, env_config: EnvConfig, metric: str,
                 evaluator: Literal["fast", "reference"]) -> None:
        """:param market: the prepared market
        :param env_config: the environment's settings (scored in their evaluation form)
        :param metric: the metric a look returns as its score (``training.selection_metric``)
        :param evaluator: ``fast`` (compiled actor) or ``reference`` (``model.predict`` bar by bar)
        """
        self.market, self.env_config, self.metric, self.evaluator = market, env_config, metric, evaluator
        self.first_bar = EpisodeBounds.whole(market, VALIDATION, evaluation_config(env_config)).first

    def ledger(self, model: Any) -> Ledger:
        """``model``'s account over the validation split, bar by bar."""
        actions = policy_actions(model, self.market, VALIDATION, self.env_config, self.evaluator)
        return replay(self.market, self.first_bar, actions, self.env_config.initial_balance)

    def __call__(self, model: Any) -> ValidationResult:
        started = time.perf_counter()
        ledger = self.ledger(model)
        metrics = compute_metrics(ledger, self.market, self.first_bar)
        return ValidationResult(score_of(metrics, self.metric), metrics, time.perf_counter() - started)


def per_bar_returns(validator: Validator, model: Any) -> np.ndarray:
    """``model``'s per-bar returns on the validation split (each bar's equity change over the previous close's
    equity), as the validator scores it: one trial's column of a study's overfitting matrix."""
    equity = validator.ledger(model).equity
    return np.diff(equity) / equity[:-1]
