"""How much a Sharpe ratio from one window can say: its error, its interval, and what luck scores.

A 15-minute split of two weeks holds about 860 bars; a Sharpe ratio measured on it has a
standard error of about 5 annualized units. Shown alone, it invites reading noise as skill.
Every report therefore carries, next to each Sharpe:

- its **standard error and 95% interval**, by Lo (2002)'s GMM estimator: the delta method
  on the mean and variance of the per-bar returns, whose covariance is the Newey-West
  (Bartlett) long-run covariance, so serial correlation, skew and fat tails are accounted
  for (with i.i.d. normal returns it reduces to ``sqrt((1 + SR^2 / 2) / T)``);
- the **probabilistic Sharpe ratio** (Bailey and Lopez de Prado 2012): the probability that
  the true Sharpe exceeds a benchmark (0, or buy-and-hold's Sharpe on the same bars), with
  the same standard error;
- the **deflated Sharpe ratio** (Bailey and Lopez de Prado 2014) of the figure that selected
  the model: the probabilistic Sharpe against the best score that N looks at a skill-less
  policy would reach on the same window, N being every validation look the run made;
- a **null distribution**: the Sharpe of many random policies with the agent's turnover on
  the same bars and costs, and the agent's percentile in it.

All Sharpe figures are annualized with the data's own bars per year, as in
:mod:`rltrader.evaluation.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from rltrader.env.market import FLAT, N_ACTIONS, MarketData
from rltrader.evaluation.ledger import account_profits

NORMAL = NormalDist()
EULER_GAMMA = 0.5772156649015329
#: How the standard error is computed; reports name it.
SHARPE_ERROR_METHOD = "Lo (2002) GMM with Newey-West autocorrelation adjustment"
NULL_POLICIES = 1_000
NULL_BLOCK_CELLS = 4_000_000  # policies x bars per vectorized pass: one pass for a short split


@dataclass(frozen=True)
class SharpeEstimate:
    """An annualized Sharpe ratio with its standard error and 95% interval (``None`` where undefined)."""

    sharpe: float | None
    standard_error: float | None
    low: float | None
    high: float | None
    observations: int


def newey_west_lags(observations: int) -> int:
    """The usual automatic bandwidth, ``floor(4 (T / 100)^(2/9))``."""
    return int(4 * (max(observations, 1) / 100.0) ** (2.0 / 9.0))


def long_run_covariance(moments: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West (Bartlett kernel) long-run covariance of the columns of ``moments`` (T, k), demeaned."""
    centered = moments - moments.mean(axis=0)
    count = len(centered)
    covariance = centered.T @ centered / count
    for lag in range(1, min(lags, count - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        autocovariance = centered[lag:].T @ centered[:-lag] / count
        covariance += weight * (autocovariance + autocovariance.T)
    return covariance


def sharpe_estimate(returns: np.ndarray, periods_per_year: float, level: float = 0.95) -> SharpeEstimate:
    """Annualized Sharpe of per-period ``returns`` with Lo's autocorrelation-adjusted standard error."""
    returns = np.asarray(returns, dtype=np.float64)
    count = len(returns)
    if count < 3:
        return SharpeEstimate(None, None, None, None, count)
    mean = float(returns.mean())
    variance = float(returns.var())
    if not variance > 0:
        return SharpeEstimate(None, None, None, None, count)
    sd = math.sqrt(variance)
    annual = math.sqrt(periods_per_year)
    moments = np.column_stack((returns - mean, (returns - mean) ** 2 - variance))
    covariance = long_run_covariance(moments, newey_west_lags(count))
    gradient = np.array([1.0 / sd, -mean / (2.0 * variance * sd)])
    per_period_variance = float(gradient @ covariance @ gradient) / count
    error = math.sqrt(max(per_period_variance, 0.0)) * annual
    sharpe = float(returns.mean() / returns.std(ddof=1)) * annual
    z = NORMAL.inv_cdf(0.5 + level / 2.0)
    return SharpeEstimate(sharpe, error, sharpe - z * error, sharpe + z * error, count)


def probabilistic_sharpe(estimate: SharpeEstimate, benchmark: float | None) -> float | None:
    """P(true Sharpe > ``benchmark``): ``Phi((SR - SR*) / SE)``; None where either is undefined."""
    if estimate.sharpe is None or benchmark is None or not estimate.standard_error:
        return None
    return NORMAL.cdf((estimate.sharpe - benchmark) / estimate.standard_error)


def expected_maximum_sharpe(trials: int, spread: float) -> float:
    """The Sharpe the best of ``trials`` skill-less looks is expected to reach when each has sd ``spread``
    (Bailey and Lopez de Prado 2014, the false strategy theorem)."""
    if trials <= 1:
        return 0.0
    return spread * ((1.0 - EULER_GAMMA) * NORMAL.inv_cdf(1.0 - 1.0 / trials)
                     + EULER_GAMMA * NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e)))


def deflated_sharpe(estimate: SharpeEstimate, trials: int) -> float | None:
    """The probabilistic Sharpe against the best of ``trials`` skill-less looks on the same window.

    The spread of a skill-less look's Sharpe is taken to be this window's standard error
    (what noise alone makes a Sharpe vary by here). Looks of one run are correlated, so
    counting each one makes the deflation conservative."""
    if estimate.sharpe is None or not estimate.standard_error:
        return None
    threshold = expected_maximum_sharpe(trials, estimate.standard_error)
    return NORMAL.cdf((estimate.sharpe - threshold) / estimate.standard_error)


def turnover(actions: np.ndarray) -> float:
    """Share of decisions that change the position (the first against flat)."""
    actions = np.asarray(actions)
    if not len(actions):
        return 0.0
    previous = np.concatenate(([FLAT], actions[:-1]))
    return float(np.mean(actions != previous))


def random_policies(steps: int, switch_probability: float, policies: int, seed: int) -> np.ndarray:
    """``(policies, steps)`` actions: each step switches, with the given probability, to one of the
    two other positions at random; the first decision is a random position."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, N_ACTIONS, (policies, 1))
    switches = rng.random((policies, steps)) < switch_probability
    switches[:, 0] = False
    shifts = np.where(switches, rng.integers(1, N_ACTIONS, (policies, steps)), 0)
    return (first + np.cumsum(shifts, axis=1)) % N_ACTIONS


@dataclass(frozen=True)
class NullDistribution:
    """Scores of random policies with the agent's turnover on the same bars and costs."""

    sharpe: np.ndarray  # (policies,), NaN where a policy's equity never moved
    total_return: np.ndarray
    switch_probability: float
    seed: int

    def percentile(self, sharpe: float | None) -> float | None:
        """Share of random policies (in %) whose Sharpe is below ``sharpe`` (ties count half)."""
        scores = self.sharpe[np.isfinite(self.sharpe)]
        if sharpe is None or not len(scores):
            return None
        return float(100.0 * (np.mean(scores < sharpe) + 0.5 * np.mean(scores == sharpe)))

    def quantile(self, q: float) -> float | None:
        scores = self.sharpe[np.isfinite(self.sharpe)]
        return float(np.quantile(scores, q)) if len(scores) else None


def null_distribution(market: MarketData, first_bar: int, steps: int, initial_balance: float,
                      switch_probability: float, policies: int = NULL_POLICIES, seed: int = 0) -> NullDistribution:
    """Score ``policies`` random policies with the ledger's own arithmetic.

    :func:`rltrader.evaluation.ledger.account_profits` walks every policy's account (units
    sized as the agent's are, profits from the same table). A split of a few thousand bars
    is one pass; longer ones go in blocks of ``NULL_BLOCK_CELLS`` policy-bars, so eighteen
    months of hourly bars stay within a few hundred MB."""
    actions = random_policies(steps, switch_probability, policies, seed)
    block_size = max(1, NULL_BLOCK_CELLS // max(steps, 1))
    sharpe, total_return = np.full(policies, np.nan), np.zeros(policies)
    for start in range(0, policies, block_size):
        block = np.ascontiguousarray(actions[start:start + block_size], dtype=np.int64)
        pnl = account_profits(block, first_bar, market.step_table, market.fraction_sizing, market.size,
                              initial_balance, np.zeros((0, steps)))
        marks = np.concatenate((np.full((len(block), 1), initial_balance),
                                initial_balance + np.cumsum(pnl, axis=1)), axis=1)
        returns = marks[:, 1:] / marks[:, :-1] - 1.0
        sd = returns.std(axis=1, ddof=1) if steps > 1 else np.zeros(len(block))
        with np.errstate(invalid="ignore", divide="ignore"):
            sharpe[start:start + len(block)] = np.where(
                sd > 0, returns.mean(axis=1) / sd * math.sqrt(market.bars_per_year), np.nan)
        total_return[start:start + len(block)] = marks[:, -1] / initial_balance - 1.0
    return NullDistribution(sharpe=sharpe, total_return=total_return, switch_probability=switch_probability,
                            seed=seed)


__all__ = [
    "NULL_BLOCK_CELLS",
    "NULL_POLICIES",
    "SHARPE_ERROR_METHOD",
    "NullDistribution",
    "SharpeEstimate",
    "deflated_sharpe",
    "expected_maximum_sharpe",
    "long_run_covariance",
    "null_distribution",
    "probabilistic_sharpe",
    "random_policies",
    "sharpe_estimate",
    "turnover",
]
