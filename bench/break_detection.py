"""The break test alone, on known answers: how soon it sees a lost edge, how often it rings without one.

The champion here is the oracle of each known-answer market as it was before its next break (it knows the edge
exactly, costs included): its per-bar returns fall when the break flips the edge, and never fall on the same market
without breaks. After an alarm the oracle that knows that break takes over (a retrained champion at its best).
Its detector (:mod:`rltrader.registry.breaks`) is calibrated on ``REFERENCE_BARS`` bars of its returns just
before the monitored stretch, as a paper account following a champion calibrates it once that many of its bars are
known (the test against what it earned; before that the account asks only whether a champion known by its held-out
window is losing, which ``bench/retrain_break.py`` measures with trained champions). Markets:
``rltrader synth`` M15 time of day, volume and momentum, 40,000 bars, seeds 11-16 (not the tests' seed), with one
break at 45% of the bars, with two (at 45% and 75%), and without.

- ``bars_to_alarm``: from each break to the first alarm at or after it (each break of the two-break markets too:
  after an alarm the next champion's detector is calibrated on its first bars after it, as a new champion's is);
- ``false_alarms_per_10k_bars``: alarms before a break, and on the markets without one, per 10,000 bars.

This measures the detector, not the whole scheme: with a trained champion the edge lost is smaller than the
oracle's, and promotion after a break is the retrain's (``bench/retrain.py``).

Usage: .venv/bin/python bench/break_detection.py [--seeds 11 12 13 14 15 16] [--bars 40000]
Last line: one JSON object with bars_to_alarm (median, max, all), false_alarms_per_10k_bars, markets, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rltrader.config import load_config  # noqa: E402
from rltrader.data.known_answer import KnownAnswerMarket  # noqa: E402
from rltrader.data.synthetic import break_times, oracle_actions, write_market  # noqa: E402
from rltrader.env import MarketData  # noqa: E402
from rltrader.evaluation.ledger import replay  # noqa: E402
from rltrader.features.preparation import preprocess  # noqa: E402
from rltrader.registry.breaks import REFERENCE_BARS, calibrate  # noqa: E402

KINDS = ("time_of_day", "volume", "momentum")
LAYOUTS = {"one break": [0.45], "two breaks": [0.45, 0.75], "no break": []}
MONITOR_FROM = 0.2  # the first monitored bar, as a share of the bars (the reference ends there)


def oracle_returns(market: KnownAnswerMarket, known: list[float], path: Path, cache: Path) -> tuple[np.ndarray,
                                                                                                        np.ndarray]:
    """Per-bar returns of the oracle that knows the market's breaks ``known`` only (the champion of that regime),
    and their bars' times."""
    config = load_config().with_overrides({"cache.dir": str(cache)})
    if not path.is_file():
        write_market(market, path)
    data = MarketData.from_prepared(preprocess(path, config), config, path)
    first, steps = 100, len(data.close) - 101
    actions = oracle_actions(market.model_copy(update={"breaks": known}), data.timestamps, data.close,
                             data.trade_cost, first, steps)
    equity = replay(data, first, actions, 10_000.0).equity
    return equity[1:] / equity[:-1] - 1.0, data.timestamps[first + 1:]


def watch(champions: list[np.ndarray], times: np.ndarray, breaks: list[np.datetime64], seed: int) -> dict[str, object]:
    """Run the detector on champion 0's returns from MONITOR_FROM on; after an alarm at or after break j, champion
    j+1 (the oracle that knows break j) takes over, calibrated on its first REFERENCE_BARS bars after the alarm,
    as a newly promoted champion would be. Delays per break; false alarms and the bars they could ring in."""
    break_rows = [int(np.searchsorted(times, stamp)) for stamp in breaks]
    delays: list[int | None] = [None] * len(break_rows)
    false_alarms, quiet_bars, champion = 0, 0, 0
    position = int(len(times) * MONITOR_FROM)
    detector = calibrate(champions[0][position - REFERENCE_BARS:position], seed=seed)
    while detector is not None and position < len(times):
        returns = champions[champion]
        next_break = break_rows[champion] if champion < len(break_rows) else len(returns)
        alarms = detector.update(returns[position:])
        quiet_bars += max(0, next_break - position)
        hit = None
        for alarm in alarms:
            row = position + alarm.bar  # a fresh detector counts bars from ``position``
            if row < next_break:
                false_alarms += 1
                continue
            hit = row
            break
        if hit is None or champion == len(break_rows):
            break
        delays[champion] = hit - next_break
        champion += 1
        position = min(len(times), hit + 1 + REFERENCE_BARS)
        detector = calibrate(champions[champion][hit + 1:position], seed=seed)
    return {"delays": delays, "false_alarms": false_alarms, "quiet_bars": quiet_bars}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15, 16])
    parser.add_argument("--bars", type=int, default=40_000)
    args = parser.parse_args()
    minimum = 2 * round(REFERENCE_BARS / MONITOR_FROM)  # a reference before the monitored bars, a stretch after
    if args.bars < minimum:
        parser.error(f"--bars {args.bars} leaves no room for the detector's {REFERENCE_BARS}-bar reference and "
                     f"the bars it watches; use at least {minimum}")
    started = time.perf_counter()
    markets, delays, false_alarms, quiet_bars = [], [], 0, 0
    with tempfile.TemporaryDirectory(prefix="break-bench-") as scratch:
        work = Path(scratch)
        for kind in KINDS:
            for layout, breaks in LAYOUTS.items():
                for seed in args.seeds:
                    market = KnownAnswerMarket(kind=kind, bars=args.bars, seed=seed, breaks=breaks)
                    path = work / f"{kind}-{seed}-{len(breaks)}.csv"
                    champions = [oracle_returns(market, breaks[:known], path, work / "cache")
                                 for known in range(len(breaks) + 1)]
                    stamps = [np.datetime64(stamp) for stamp in break_times(market)]
                    seen = watch([returns for returns, _ in champions], champions[0][1], stamps, seed)
                    delays += seen["delays"]
                    false_alarms += seen["false_alarms"]
                    quiet_bars += seen["quiet_bars"]
                    markets.append({"kind": kind, "layout": layout, "seed": seed, **seen})
                    print(f"{kind:<12} {layout:<10} seed {seed}: bars to alarm {seen['delays'] or '-'}, "
                          f"false alarms {seen['false_alarms']} in {seen['quiet_bars']:,} bars without a break",
                          flush=True)
    found = [delay for delay in delays if delay is not None]
    rate = false_alarms * 10_000 / max(quiet_bars, 1)
    median, longest = (float(np.median(found)), int(max(found))) if found else (None, None)
    print(f"\n{len(found)} of {len(delays)} breaks seen; bars to alarm median {median}, max "
          f"{longest}; {false_alarms} false alarms in {quiet_bars:,} bars without a break: {rate:.2f} per 10,000")
    print(json.dumps({"bars_to_alarm": {"median": median, "max": longest,
                                        "all": delays, "missed": len(delays) - len(found)},
                      "false_alarms_per_10k_bars": round(rate, 3), "false_alarms": false_alarms,
                      "bars_without_break": quiet_bars, "reference_bars": REFERENCE_BARS, "markets": markets,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
