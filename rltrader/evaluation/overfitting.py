"""How likely a pick among many tries is overfit: the probability of backtest overfitting (PBO).

A study that tries N configurations and keeps the best on one window reports that best score,
but the best of N is high partly by luck. Combinatorially symmetric cross-validation (CSCV;
Bailey, Borwein, Lopez de Prado and Zhu, "The probability of backtest overfitting", 2015)
measures how much: the bars the trials were scored on are cut into S blocks; for every way of
choosing S/2 blocks as "in-sample" (the rest "out-of-sample"), the trial that is best in
sample is located in the out-of-sample ranking. Its relative rank ``w`` gives the logit
``log(w / (1 - w))``; PBO is the share of splits where that logit is <= 0, i.e. where the
in-sample winner is no better than the median out of sample. Pure noise gives about 0.5; a
configuration with a real edge that the others lack gives about 0.

Also reported, as the paper does: the slope of the winner's out-of-sample against its
in-sample performance over the splits (performance degradation) and the probability that
the winner loses out of sample. Every split uses whole blocks of consecutive bars, so the
serial structure inside a block is kept.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

DEFAULT_BLOCKS = 16
"""S: 16 blocks give C(16, 8) = 12,870 splits (FinRL_Crypto's choice; the paper uses 16 too)."""


@dataclass(frozen=True)
class OverfittingReport:
    """CSCV's figures for a trials x bars matrix.

    :param pbo: the share of splits whose in-sample winner ranks at or below the out-of-sample median
    :param logits: each split's logit of the winner's out-of-sample relative rank
    :param slope: least-squares slope of the winner's out-of-sample Sharpe on its in-sample Sharpe
    :param intercept: that regression's intercept
    :param p_oos_loss: the share of splits where the winner's out-of-sample Sharpe is below 0
    :param trials: N, the configurations compared
    :param bars: the bars used (a whole number of blocks; the remainder at the start is dropped)
    :param blocks: S
    :param splits: C(S, S/2)
    """

    pbo: float
    logits: np.ndarray
    slope: float
    intercept: float
    p_oos_loss: float
    trials: int
    bars: int
    blocks: int
    splits: int

    def to_json(self) -> dict[str, float | int | list[float]]:
        """The figures (logit quantiles rather than all of them), for reports and bundles."""
        return {"pbo": self.pbo, "slope": self.slope, "intercept": self.intercept, "p_oos_loss": self.p_oos_loss,
                "trials": self.trials, "bars": self.bars, "blocks": self.blocks, "splits": self.splits,
                "logit_quantiles": [float(value) for value in np.quantile(self.logits, [0.05, 0.25, 0.5, 0.75,
                                                                                          0.95])]}


def aligned_on_last_bars(columns: list[np.ndarray]) -> np.ndarray:
    """Per-bar return series that end on the same bar, cut to the bars they all have, as a bars x trials matrix
    (a trial that observes more bars back starts deciding later in the same split)."""
    common = min(len(column) for column in columns)
    return np.column_stack([column[len(column) - common:] for column in columns])


def blocks_for(bars: int) -> int:
    """S for ``bars``: :data:`DEFAULT_BLOCKS`, fewer (even) when the bars cannot fill 16 blocks of 2; 0 if none fit."""
    blocks = min(DEFAULT_BLOCKS, bars // 2 // 2 * 2)
    return blocks if blocks >= 2 else 0


def _block_moments(returns: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per block and trial: the sum and the sum of squares of the returns; and the bars per block."""
    bars = returns.shape[0] // blocks * blocks
    trimmed = returns[returns.shape[0] - bars:]  # the latest bars: the remainder dropped is the oldest
    shaped = trimmed.reshape(blocks, bars // blocks, returns.shape[1])
    return shaped.sum(axis=1), (shaped ** 2).sum(axis=1), bars // blocks


def _sharpe(sums: np.ndarray, squares: np.ndarray, count: int) -> np.ndarray:
    """Per-bar Sharpe ratios from sums and sums of squares over ``count`` bars (0 where there is no spread)."""
    mean = sums / count
    variance = np.maximum(squares / count - mean ** 2, 0.0) * count / max(count - 1, 1)
    spread = np.sqrt(variance)
    return np.divide(mean, spread, out=np.zeros_like(mean), where=spread > 1e-12)


def probability_of_backtest_overfitting(returns: np.ndarray, blocks: int = DEFAULT_BLOCKS) -> OverfittingReport:
    """CSCV over a bars x trials matrix of per-bar returns, scored by the Sharpe ratio.

    :param returns: shape (bars, trials): each column one configuration's per-bar returns on the same bars
    :param blocks: S, even, at least 2; each block needs at least 2 bars
    :raises ValueError: fewer than 2 trials, an odd or too small S, too few bars for S blocks, or NaNs
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2 or returns.shape[1] < 2:
        raise ValueError("PBO needs a bars x trials matrix with at least 2 trials")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be even and at least 2, not {blocks}")
    if returns.shape[0] < 2 * blocks:
        raise ValueError(f"{returns.shape[0]} bars are too few for {blocks} blocks of at least 2 bars")
    if not np.isfinite(returns).all():
        raise ValueError("the returns hold NaN or infinite values")
    sums, squares, per_block = _block_moments(returns, blocks)
    chosen = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    in_sample = np.zeros((len(chosen), blocks))
    np.put_along_axis(in_sample, chosen, 1.0, axis=1)
    out_of_sample = 1.0 - in_sample
    count = per_block * blocks // 2
    sharpe_in = _sharpe(in_sample @ sums, in_sample @ squares, count)
    sharpe_out = _sharpe(out_of_sample @ sums, out_of_sample @ squares, count)
    winner = np.argmax(sharpe_in, axis=1)
    rows = np.arange(len(chosen))
    winner_out = sharpe_out[rows, winner]
    trials = returns.shape[1]
    rank = (sharpe_out < winner_out[:, None]).sum(axis=1) + 0.5 * ((sharpe_out == winner_out[:, None]).sum(axis=1)
                                                                   - 1) + 1
    relative = rank / (trials + 1)
    logits = np.log(relative / (1.0 - relative))
    winner_in = sharpe_in[rows, winner]
    slope, intercept = (np.polyfit(winner_in, winner_out, 1) if np.ptp(winner_in) > 0
                        else (math.nan, float(np.mean(winner_out))))
    return OverfittingReport(pbo=float(np.mean(logits <= 0)), logits=logits, slope=float(slope),
                             intercept=float(intercept), p_oos_loss=float(np.mean(winner_out < 0)), trials=trials,
                             bars=per_block * blocks, blocks=blocks, splits=len(chosen))


__all__ = ["DEFAULT_BLOCKS", "OverfittingReport", "aligned_on_last_bars", "blocks_for",
           "probability_of_backtest_overfitting"]
