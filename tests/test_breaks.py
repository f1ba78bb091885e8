"""The break test on a champion's live returns: Page's CUSUM as defined, its false-alarm rate where nothing breaks, and
how soon it sees a break on known-answer markets (the oracle that missed the break is the champion that lost its edge).
"""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.config import load_config
from rltrader.data.known_answer import KnownAnswerMarket
from rltrader.data.synthetic import break_times, oracle_actions, write_market
from rltrader.env import MarketData
from rltrader.evaluation.ledger import replay
from rltrader.features.preparation import preprocess
from rltrader.registry.breaks import REFERENCE_BARS, BreakDetector, alarms_per_10k, block_resample, calibrate


def _by_hand(returns: np.ndarray, detector: BreakDetector) -> list[tuple[int, int]]:
    """The definition, written out: S = max(0, S - z - k) on clipped standardized returns, reset after an alarm."""
    statistic, start, alarms = 0.0, 0, []
    for bar, value in enumerate(returns):
        if statistic == 0.0:
            start = bar
        z = min(max((value - detector.mean) / detector.sd, -4.0), 4.0)
        statistic = max(0.0, statistic - z - detector.k)
        if statistic > detector.threshold:
            alarms.append((bar, start))
            statistic = 0.0
    return alarms


def _champion_like(rng: np.random.Generator, bars: int, mean: float) -> np.ndarray:
    """Per-bar returns of a strategy: flat 40% of bars, fat-tailed moves, a small mean."""
    return np.where(rng.random(bars) < 0.4, 0.0, rng.standard_t(4, bars) * 0.001 + mean)


def test_the_cusum_is_pages_written_out_and_keeps_its_state_across_batches():
    rng = np.random.default_rng(1)
    returns = _champion_like(rng, 6_000, 0.0002) - np.concatenate((np.zeros(3_000), np.full(3_000, 0.0004)))
    whole = BreakDetector(mean=0.00012, sd=0.0011, k=0.05, threshold=12.0)
    expected = _by_hand(returns, whole)
    assert expected, "the drop at bar 3,000 must raise alarms"
    in_batches = BreakDetector(mean=0.00012, sd=0.0011, k=0.05, threshold=12.0)
    alarms = [alarm for part in np.array_split(returns, 7) for alarm in in_batches.update(part)]
    assert [(alarm.bar, alarm.change_bar) for alarm in alarms] == expected
    assert [(alarm.bar, alarm.change_bar) for alarm in whole.update(returns)] == expected
    first = alarms[0]
    assert first.statistic > first.threshold and first.live_mean == pytest.approx(
        float(np.mean(returns[first.change_bar:first.bar + 1])), rel=1e-12)
    again = BreakDetector.from_json(in_batches.to_json())  # what a paper account's state keeps
    assert again == in_batches


def test_calibration_holds_the_false_alarm_rate_where_nothing_breaks_and_sees_a_lost_edge_soon():
    rng = np.random.default_rng(2)
    reference = _champion_like(rng, 1_200, 0.00015)  # what the champion was promoted on (per-bar Sharpe ~0.13)
    detector = calibrate(reference, seed=3)
    assert detector is not None and detector.k == pytest.approx(0.5 * reference.mean() / reference.std())
    # break-free streams it was not calibrated on: other resamplings of the same returns
    fresh = block_resample(reference, 500_000, np.random.default_rng(99))
    assert alarms_per_10k(fresh, detector.mean, detector.sd, detector.k, detector.threshold) <= 1.0
    # 20 live streams whose edge turns against the champion at bar 5,000: each seen within 2,000 bars of it, and
    # the alarms before it (false ones) about as rare as calibrated
    delays, false_alarms = [], 0
    for stream in range(20):
        live = np.concatenate((block_resample(reference, 5_000, np.random.default_rng(100 + stream)),
                               block_resample(reference, 5_000, np.random.default_rng(200 + stream))
                               - 2 * reference.mean()))
        alarms = BreakDetector.from_json({**detector.to_json()}).update(live)
        false_alarms += sum(alarm.bar < 5_000 for alarm in alarms)
        after = [alarm for alarm in alarms if alarm.bar >= 5_000]
        assert after and after[0].live_mean < 0 < after[0].expected_mean
        delays.append(after[0].bar - 5_000)
    assert max(delays) < 2_000 and false_alarms * 10_000 / (20 * 5_000) <= 1.5, (delays, false_alarms)
    assert calibrate(reference - 2 * reference.mean()) is None  # no edge to lose: no detector


def test_on_known_answer_markets_the_oracle_that_missed_the_break_is_seen_after_it_and_rarely_without_one(tmp_path):
    """The champion is the oracle of the market as it was before its break (it knows the old edge exactly); its
    detector calibrated on 2,000 bars of its returns (REFERENCE_BARS), it trades on. On each kind its live returns
    fall at the break: the alarm comes after it, within 2,000 bars. The same oracle on the same kinds without the
    break: at most 1 false alarm per 10,000 bars over the three (a rate: one market's count is a small Poisson draw)."""
    config = load_config().with_overrides({"cache.dir": str(tmp_path / "cache")})
    false_alarms, quiet_bars = 0, 0
    for kind in ("time_of_day", "volume", "momentum"):
        for breaks in ([0.6], []):
            market = KnownAnswerMarket(kind=kind, bars=30_000, seed=8, breaks=breaks)
            path = tmp_path / f"{kind}-{len(breaks)}.csv"
            write_market(market, path)
            data = MarketData.from_prepared(preprocess(path, config), config, path)
            before = market.model_copy(update={"breaks": []})  # what the champion knows: the edge as it was
            first, steps = 100, len(data.close) - 101
            actions = oracle_actions(before, data.timestamps, data.close, data.trade_cost, first, steps)
            equity = replay(data, first, actions, 10_000.0).equity
            returns = equity[1:] / equity[:-1] - 1.0
            detector = calibrate(returns[6_000 - REFERENCE_BARS:6_000], seed=1)
            assert detector is not None
            alarms = detector.update(returns[6_000:])
            if not breaks:
                false_alarms, quiet_bars = false_alarms + len(alarms), quiet_bars + len(returns) - 6_000
                continue
            stamps = data.timestamps[first + 1 + 6_000:]
            break_bar = int(np.searchsorted(stamps, np.datetime64(break_times(market)[0])))
            after = [alarm for alarm in alarms if alarm.bar >= break_bar]
            assert after and after[0].bar - break_bar < 2_000, (kind, [alarm.bar for alarm in alarms], break_bar)
            false_alarms += len(alarms) - len(after)
            quiet_bars += break_bar
    assert false_alarms * 10_000 / quiet_bars <= 1.0, (false_alarms, quiet_bars)
