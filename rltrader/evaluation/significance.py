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
from numba import njit, prange

from rltrader.engine.kernels.accounts import fill
from rltrader.env.market import FLAT, N_ACTIONS, OPEN_COLUMN, MarketData

NORMAL = NormalDist()
EULER_GAMMA = 0.5772156649015329
#: How the standard error is computed; reports name it.
SHARPE_ERROR_METHOD = "Lo (2002) GMM with Newey-West autocorrelation adjustment"
NULL_POLICIES = 1_000


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


@njit(cache=True, nogil=True, inline="always")
def _gap(log_stay: float, never: bool, always: bool, steps: int) -> int:
    """Bars until the next switch: geometric, one uniform per switch instead of one per bar."""
    if never:
        return steps + 1
    if always:
        return 1
    return 1 + int(math.log(1.0 - np.random.random()) / log_stay)


@njit(cache=True, nogil=True, inline="always")
def _start_policy(seed: int, number: int, log_stay: float, never: bool, always: bool, steps: int) -> tuple[int, int]:
    """Seed policy ``number``'s own generator; its first position and the step of its first switch."""
    np.random.seed((seed * 1_000_003 + number) % 4_294_967_296)
    position = np.random.randint(0, N_ACTIONS)
    return position, _gap(log_stay, never, always, steps)


@njit(cache=True, nogil=True, inline="always")
def _switch(position: int) -> int:
    return (position + 1 + np.random.randint(0, N_ACTIONS - 1)) % N_ACTIONS


@njit(cache=True, nogil=True)
def _draw_random_policies(steps: int, switch_probability: float, first_policy: int, seed: int,
                          out: np.ndarray) -> None:
    """Fill ``out`` (policies x steps) with policies ``first_policy``... of stream ``seed``.

    Each policy has its own generator, seeded by ``seed`` and its number, so a policy is the same
    in any block and in :func:`_score_random_policies`, which draws in the same order."""
    never, always = switch_probability <= 0.0, switch_probability >= 1.0
    log_stay = 0.0 if never or always else math.log1p(-switch_probability)
    for row in range(out.shape[0]):
        position, next_switch = _start_policy(seed, first_policy + row, log_stay, never, always, steps)
        for step in range(steps):
            if step == next_switch:
                position = _switch(position)
                next_switch = step + _gap(log_stay, never, always, steps)
            out[row, step] = position


@njit(cache=True, nogil=True, parallel=True)
def _score_random_policies(steps: int, switch_probability: float, seed: int, first_bar: int, table: np.ndarray,
                           fraction_sizing: bool, size: float, initial_balance: float, periods: float,
                           sharpe: np.ndarray, total_return: np.ndarray) -> None:
    """Sharpe and total return of random policies ``0..len(sharpe)-1``, drawn as :func:`_draw_random_policies`
    draws them and walked through the account as :func:`~rltrader.evaluation.ledger.account_profits` walks
    it (the environments' ``fill``, equity added left to right), without storing a policy's actions or
    profits: one pass per policy, its returns kept for the two-pass variance. Policies are spread over the
    cores; each seeds its own generator, so which core drew it does not matter."""
    never, always = switch_probability <= 0.0, switch_probability >= 1.0
    log_stay = 0.0 if never or always else math.log1p(-switch_probability)
    for row in prange(sharpe.shape[0]):
        returns = np.empty(steps)
        position, next_switch = _start_policy(seed, row, log_stay, never, always, steps)
        held, held_units, entry, value = FLAT, 0.0, 0.0, initial_balance
        total = 0.0
        for step in range(steps):
            if step == next_switch:
                position = _switch(position)
                next_switch = step + _gap(log_stay, never, always, steps)
            t = first_bar + 1 + step
            held_units, profit = fill(table, t, held, position, held_units, entry, value, fraction_sizing, size)
            marked = value + profit
            returns[step] = marked / value - 1.0
            total += returns[step]
            value = marked
            if position != held:
                entry = table[t, OPEN_COLUMN]
            held = position
        total_return[row] = value / initial_balance - 1.0
        if steps < 2:
            sharpe[row] = np.nan
            continue
        mean = total / steps
        squares = 0.0
        for step in range(steps):
            squares += (returns[step] - mean) ** 2
        sd = math.sqrt(squares / (steps - 1))
        sharpe[row] = mean / sd * math.sqrt(periods) if sd > 0 else np.nan


def random_policies(steps: int, switch_probability: float, policies: int, seed: int,
                    first_policy: int = 0) -> np.ndarray:
    """``(policies, steps)`` actions: each step after the first switches, with the given probability, to one
    of the two other positions at random; the first decision is a random position.

    :param steps: decisions per policy
    :param switch_probability: the chance that a decision changes the position (the agent's turnover)
    :param policies: how many policies to draw
    :param seed: the stream; policy ``k`` of a seed is the same in any block (``first_policy``)
    :param first_policy: the number of the first policy drawn (the null draws in blocks)
    """
    out = np.empty((policies, steps), dtype=np.int64)
    _draw_random_policies(steps, float(switch_probability), first_policy, seed, out)
    return out


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

    Each policy's account is walked as :func:`rltrader.evaluation.ledger.account_profits` walks it
    (units sized as the agent's are, profits from the same table, equity added left to right), in one
    compiled pass per policy that draws its actions as it goes (:func:`random_policies` draws the same
    ones), so nothing of size policies x bars is ever held: 1,000 policies over 50,000 bars take a
    fraction of a second.

    :param market: the bars and their execution table
    :param first_bar: the bar of the first decision (fills from the next bar's open)
    :param steps: decisions per policy, the agent's
    :param initial_balance: each account's start
    :param switch_probability: the agent's turnover
    :param policies: how many random policies
    :param seed: the random stream, recorded with the result
    """
    sharpe, total_return = np.full(policies, np.nan), np.zeros(policies)
    _score_random_policies(steps, float(switch_probability), seed, first_bar, market.step_table,
                           market.fraction_sizing, market.size, initial_balance, float(market.bars_per_year),
                           sharpe, total_return)
    return NullDistribution(sharpe=sharpe, total_return=total_return, switch_probability=switch_probability,
                            seed=seed)


__all__ = [
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
