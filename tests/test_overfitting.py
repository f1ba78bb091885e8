"""The probability of backtest overfitting (CSCV) on known answers: trials of pure noise give about 0.5,
one trial with a real edge among them about 0; the splits are exactly C(S, S/2), and the figures follow
the paper's definitions on a matrix small enough to check by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rltrader.evaluation.overfitting import probability_of_backtest_overfitting


def _noise(seed: int, bars: int = 4000, trials: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.001, (bars, trials))


def test_trials_of_pure_noise_are_overfit_half_the_time():
    """One matrix's PBO is itself noisy (its 12,870 splits share the same bars): the mean over 20 markets
    is what the known answer bounds; every one lies inside (0, 1)."""
    values = [probability_of_backtest_overfitting(_noise(seed)).pbo for seed in range(20)]
    assert 0.4 < float(np.mean(values)) < 0.6, values
    assert all(0.0 < value < 1.0 for value in values), values


def test_one_trial_with_a_planted_edge_among_noise_is_not_overfit():
    for seed in range(5):
        returns = _noise(seed)
        returns[:, 7] += 0.0002  # a per-bar Sharpe of 0.2: it wins in sample and out of sample alike
        report = probability_of_backtest_overfitting(returns)
        assert report.pbo == 0.0 and report.p_oos_loss == 0.0, (seed, report.pbo)
        assert report.trials == 40 and report.splits == math.comb(16, 8) == 12_870 and report.bars == 4000


def test_the_figures_are_the_papers_on_a_matrix_checked_by_hand():
    """4 blocks of 3 bars, 3 trials: for every choice of 2 in-sample blocks, the in-sample winner's rank
    out of sample, computed here straight from the definition."""
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 1.0, (13, 3))  # 13 bars: the oldest one is dropped to make whole blocks
    report = probability_of_backtest_overfitting(returns, blocks=4)
    kept = returns[1:]
    blocks = np.split(kept, 4)
    expected = []
    for chosen in itertools.combinations(range(4), 2):
        inside = np.vstack([blocks[b] for b in chosen])
        outside = np.vstack([blocks[b] for b in range(4) if b not in chosen])
        sharpe_in = inside.mean(axis=0) / inside.std(axis=0, ddof=1)
        sharpe_out = outside.mean(axis=0) / outside.std(axis=0, ddof=1)
        winner = int(np.argmax(sharpe_in))
        rank = 1 + int((sharpe_out < sharpe_out[winner]).sum())
        expected.append(math.log(rank / 4 / (1 - rank / 4)))
    assert report.splits == 6 and report.bars == 12
    np.testing.assert_allclose(report.logits, expected, rtol=1e-9)
    assert report.pbo == pytest.approx(np.mean(np.array(expected) <= 0))


@pytest.mark.parametrize(("shape", "blocks", "message"), [
    ((100, 1), 16, "at least 2 trials"), ((100, 3), 5, "even"), ((20, 3), 16, "too few"),
])
def test_bad_input_is_refused_saying_why(shape, blocks, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(np.zeros(shape), blocks)


def _outcome(tmp_path, fold: int, seed: int, agent_returns: np.ndarray, market: np.ndarray):
    """A finished fold x seed whose test equity is ``agent_returns`` compounded (buy-and-hold: ``market``)."""
    import pandas as pd

    from rltrader.records import FoldOutcome

    run_dir = tmp_path / f"fold{fold}-seed{seed}"
    (run_dir / "report" / "test").mkdir(parents=True)
    stamps = pd.date_range("2024-01-01", periods=len(agent_returns) + 1, freq="h") + pd.Timedelta(days=30 * fold)
    pd.DataFrame({"timestamp": stamps,
                  "agent_equity": 1e4 * np.cumprod(np.concatenate(([1.0], 1 + agent_returns))),
                  "buy_and_hold_equity": 1e4 * np.cumprod(np.concatenate(([1.0], 1 + market)))}
                 ).to_parquet(run_dir / "report" / "test" / "equity.parquet")
    figures = {"sharpe": 1.0, "total_return": float(np.prod(1 + agent_returns) - 1)}
    return FoldOutcome(fold=fold, seed=seed, run_dir=str(run_dir), warm_started_from=None, test_start="",
                       test_end="", test_bars=len(agent_returns), agent=figures,
                       buy_and_hold={"sharpe": 0.0, "total_return": 0.0}, oracle=None, edge_captured=None,
                       best_validation=None, looks=3, timesteps=1, seconds=1.0, curve=[])


def test_a_walk_forward_of_several_seeds_reports_the_overfitting_of_picking_one(tmp_path):
    """Seeds that differ only by luck: picking the best in-sample one is about a coin flip; a seed with a
    real edge the others lack is picked rightly (PBO 0). One seed: nothing to pick, no figure."""
    from rltrader.display.walkforward import aggregate_lines
    from rltrader.walkforward.report import aggregate, stitched_returns

    rng = np.random.default_rng(0)
    market = rng.normal(0, 0.001, (2, 600))
    for edge, expected in ((0.0, (0.2, 0.8)), (0.0004, (0.0, 0.0))):
        seeds = {seed: rng.normal(0, 0.001, (2, 600)) for seed in range(6)}
        seeds[3] = seeds[3] + edge
        outcomes = [_outcome(tmp_path / f"edge{edge}", fold, seed, seeds[seed][fold], market[fold])
                    for fold in range(2) for seed in seeds]
        figures = aggregate(outcomes, stitched_returns(outcomes), bars_per_year=6000)
        overfitting = figures["seed_overfitting"]
        assert overfitting["trials"] == 6 and overfitting["bars"] == 1200 // 16 * 16
        assert expected[0] <= overfitting["pbo"] <= expected[1], (edge, overfitting["pbo"])
        assert any(line.startswith("Picking a seed by its backtest: probability of overfitting")
                   for line in aggregate_lines(figures, None))
    alone = [outcome for outcome in outcomes if outcome.seed == 0]
    assert "seed_overfitting" not in aggregate(alone, stitched_returns(alone), bars_per_year=6000)
