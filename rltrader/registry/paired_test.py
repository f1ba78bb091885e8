"""Is the challenger better than the champion? A paired test on their per-bar returns on one window.

Both models trade the same held-out bars with the same costs, so each bar gives a pair of returns
and their difference ``d_t = r_challenger,t - r_champion,t``. What the market did that bar is in
both returns and cancels in the difference, so the test has far more power than comparing two
Sharpe ratios with their own intervals. The differences are autocorrelated (positions last many
bars), so the standard error of their mean is Newey-West's (Bartlett kernel, the usual automatic
bandwidth ``floor(4 (T/100)^(2/9))``), and the one-sided probability that the challenger's true
mean return is higher is ``Phi(mean(d) / SE)``.

A challenger is promoted only when that probability reaches the configured level (default 0.9)
*and* its maximum drawdown on the window is not worse than the champion's by more than the
tolerance: a higher mean bought with a deeper hole is not an improvement a trader wants.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict

from rltrader.evaluation.significance import long_run_covariance, newey_west_lags


class PairedComparison(BaseModel):
    """The paired test and the decision it leads to.

    :param bars: paired returns compared
    :param mean_difference: mean per-bar return of the challenger minus the champion's
    :param standard_error: Newey-West standard error of that mean
    :param lags: the Newey-West bandwidth used
    :param probability_better: one-sided P(challenger's mean return > champion's), ``Phi(mean / SE)``
    :param challenger_drawdown: the challenger's maximum drawdown on the window (a fraction)
    :param champion_drawdown: the champion's
    :param required_probability: the level promotion needs
    :param drawdown_tolerance: how much deeper the challenger's drawdown may be
    :param promote: whether both conditions hold
    :param reason: the decision in one sentence, with its figures
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bars: int
    mean_difference: float
    standard_error: float
    lags: int
    probability_better: float
    challenger_drawdown: float
    champion_drawdown: float
    required_probability: float
    drawdown_tolerance: float
    promote: bool
    reason: str


def mean_difference_test(differences: np.ndarray) -> tuple[float, float, int, float]:
    """Mean of ``differences``, its Newey-West standard error, the lags, and ``Phi(mean / SE)``.

    With a zero standard error (identical returns, or a constant difference) the probability is
    1 or 0 by the mean's sign, and 0.5 for a zero mean."""
    differences = np.asarray(differences, dtype=np.float64)
    count = len(differences)
    if count < 2:
        raise ValueError(f"a paired test needs at least 2 paired returns, got {count}")
    mean = float(differences.mean())
    lags = newey_west_lags(count)
    variance = float(long_run_covariance(differences[:, None], lags)[0, 0]) / count
    error = math.sqrt(max(variance, 0.0))
    if error > 0:
        probability = NormalDist().cdf(mean / error)
    else:
        probability = 1.0 if mean > 0 else 0.0 if mean < 0 else 0.5
    return mean, error, lags, probability


def compare(challenger_returns: np.ndarray, champion_returns: np.ndarray, challenger_drawdown: float,
            champion_drawdown: float, required_probability: float, drawdown_tolerance: float) -> PairedComparison:
    """Test the challenger against the champion on paired per-bar returns and decide (see the module docstring).

    :param challenger_returns: the challenger's per-bar returns on the window
    :param champion_returns: the champion's on the same bars, with the same costs
    :param challenger_drawdown: the challenger's maximum drawdown there (a positive fraction)
    :param champion_drawdown: the champion's
    :param required_probability: promote only when P(challenger better) reaches this
    :param drawdown_tolerance: and its drawdown is at most this much deeper than the champion's
    """
    challenger_returns = np.asarray(challenger_returns, dtype=np.float64)
    champion_returns = np.asarray(champion_returns, dtype=np.float64)
    if challenger_returns.shape != champion_returns.shape:
        raise ValueError(f"paired returns must cover the same bars: {challenger_returns.shape} vs "
                         f"{champion_returns.shape}")
    mean, error, lags, probability = mean_difference_test(challenger_returns - champion_returns)
    better = probability >= required_probability
    drawdown_ok = challenger_drawdown <= champion_drawdown + drawdown_tolerance
    figures = (f"P(challenger better) = {probability:.3f} (mean difference {mean * 1e4:+.3f} bp per bar, "
               f"Newey-West SE {error * 1e4:.3f} bp, {len(challenger_returns):,} bars)")
    drawdowns = (f"max drawdown {100 * challenger_drawdown:.2f}% vs the champion's {100 * champion_drawdown:.2f}% "
                 f"(tolerance {100 * drawdown_tolerance:.1f} points)")
    if better and drawdown_ok:
        reason = f"promoted: {figures} reaches {required_probability:.2f}, and {drawdowns}"
    elif better:
        reason = f"champion kept: {figures} reaches {required_probability:.2f}, but {drawdowns} is too deep"
    else:
        reason = f"champion kept: {figures} is below {required_probability:.2f}"
    return PairedComparison(bars=len(challenger_returns), mean_difference=mean, standard_error=error, lags=lags,
                            probability_better=probability, challenger_drawdown=challenger_drawdown,
                            champion_drawdown=champion_drawdown, required_probability=required_probability,
                            drawdown_tolerance=drawdown_tolerance, promote=better and drawdown_ok, reason=reason)


__all__ = ["PairedComparison", "compare", "mean_difference_test"]
