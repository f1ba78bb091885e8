"""After a regime break: today's retrain against the retrain on the bars since the break, replayed bar block by block.

A known-answer M15 time-of-day market (``rltrader synth time_of_day --breaks``) whose blocks swap signs at
``--break_at``. A first model is trained with ``rltrader retrain`` on the bars before ``--start``; then the file
grows by ``--step`` bars at a time. At each step the paper account following the model's champion
(``rltrader paper --model``'s account, with its break test) trades the new bars, then ``rltrader retrain`` runs on
the grown file. Two registries replay the same bars with the same seeds and costs:

- **today**: ``--no-after_break``: the challenger trains on the last ``train_bars`` (a mix of both regimes for a
  while after the break);
- **after break**: the default: after the paper account's alarm, the challenger trains on the bars since the
  break (``retrain.break_*`` sizes).

Per scheme and seed: ``bars_to_alarm`` (break to the paper account's first alarm), ``bars_to_promotion`` (break to
the first promotion after it), ``post_break_edge_captured`` (the account's Sharpe over every bar after the break
over the oracle's on the same bars, the oracle knowing the break). The sequential replay is what a user's nightly
retrain does; it trains one challenger per step per scheme, so it is slow (minutes per seed).

Usage: .venv/bin/python bench/retrain_break.py [--seeds 1 2 3] [--bars 14000] [--start 7000] [--break_at 9000]
       [--step 500]
Last line: one JSON object with, per scheme, bars_to_alarm, bars_to_promotion, post_break_edge_captured (per seed and
their mean), and seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SIZES = {"train_bars": 3000, "validation_bars": 600, "holdout_bars": 400}  # M15: about a month, a week, 4 days
SCHEMES = {"today": False, "after break": True}


def oracle_sharpe(market: Any, path: Path, first_time: pd.Timestamp, work: Path) -> tuple[float, float]:
    """The oracle's per-bar Sharpe over the bars from ``first_time`` on (it knows the break), and its bars per year."""
    from rltrader.config import load_config
    from rltrader.data.synthetic import oracle_actions
    from rltrader.env import MarketData
    from rltrader.evaluation.ledger import replay
    from rltrader.features.preparation import preprocess

    config = load_config().with_overrides({"cache.dir": str(work / "oracle-cache")})
    data = MarketData.from_prepared(preprocess(path, config), config, path)
    first = int(np.searchsorted(data.timestamps, np.datetime64(first_time))) - 1
    steps = len(data.close) - 1 - first
    equity = replay(data, first, oracle_actions(market, data.timestamps, data.close, data.trade_cost, first, steps),
                    10_000.0).equity
    returns = equity[1:] / equity[:-1] - 1.0
    return float(np.mean(returns) / np.std(returns)), data.bars_per_year


def run_scheme(scheme: str, after_break: bool, source: pd.DataFrame, args: argparse.Namespace, seed: int,
               work: Path, break_time: pd.Timestamp) -> dict[str, Any]:
    """One registry's replay: the first model, then paper step and retrain at every step."""
    from rltrader.jobs.requests import RetrainRequest
    from rltrader.live.paper import holding, open_paper_account
    from rltrader.registry.store import open_registry
    from rltrader.retraining.retrain import retrain

    root = work / scheme.replace(" ", "_")
    root.mkdir(parents=True)
    (root / "settings.json").write_text('{"performance_mode": "quiet"}', encoding="utf-8")
    data = root / "bars.csv"

    def grow(rows: int) -> None:
        source.iloc[:rows].to_csv(data.with_suffix(".tmp"), index=False)
        os.replace(data.with_suffix(".tmp"), data)

    request = RetrainRequest(name="m", data_path=str(data), registry_dir=str(root / "registry"),
                             cache_dir=str(root / "cache"), settings_file=str(root / "settings.json"), seed=seed,
                             after_break=after_break, **SIZES)
    grow(args.start)
    assert retrain(request.to_spec()).kind == "promote"
    first_time = pd.to_datetime(source["time"].iloc[args.start], unit="s")
    for rows in range(args.start + args.step, args.bars + 1, args.step):
        grow(rows)
        account = open_paper_account(None, data, "live", root / "paper", str(first_time) if rows == args.start +
                                     args.step else None, model="m", registry_dir=root / "registry")
        with holding(account):
            account.follow_champion()
            account.process(account.new_bars())
        outcome = retrain(request.to_spec())
        print(f"  seed {seed} {scheme:<11} bars {rows:,}: {outcome.kind}"
              f"{'' if outcome.version is None else f' v{outcome.version}'}; champion v{outcome.champion}; "
              f"{len(account.alarms)} alarms so far", flush=True)
    ledger = account.ledger_frame()
    times = pd.to_datetime(ledger["time"])
    equity = np.concatenate(([10_000.0], ledger["equity"].to_numpy(dtype=float)))
    returns = equity[1:] / equity[:-1] - 1.0
    after = (times >= break_time).to_numpy()
    bar_of = {stamp: index for index, stamp in enumerate(pd.to_datetime(source["time"], unit="s"))}
    break_bar = bar_of[break_time]
    alarms = [bar_of[pd.Timestamp(alarm["time"])] - break_bar for alarm in account.alarms
              if pd.Timestamp(alarm["time"]) >= break_time]
    registry = open_registry(root / "registry", "m")
    promotions = [pd.Timestamp(version.windows["holdout"].end) for version in registry.file.versions
                  if version.decision.get("kind") == "promote" and pd.Timestamp(version.windows["holdout"].end)
                  >= break_time]
    return {"bars_to_alarm": alarms[0] if alarms else None,
            "false_alarms": sum(pd.Timestamp(alarm["time"]) < break_time for alarm in account.alarms),
            "bars_to_promotion": bar_of[min(promotions)] - break_bar if promotions else None,
            "post_break_sharpe_per_bar": float(np.mean(returns[after]) / np.std(returns[after])),
            "promotions_after_break": len(promotions), "versions": len(registry.file.versions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--bars", type=int, default=14_000)
    parser.add_argument("--start", type=int, default=7_000)
    parser.add_argument("--break_at", type=int, default=9_000)
    parser.add_argument("--step", type=int, default=500)
    args = parser.parse_args()
    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import SUITE_SETTINGS, break_times, write_market

    started = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {scheme: [] for scheme in SCHEMES}
    with tempfile.TemporaryDirectory(prefix="retrain-break-") as scratch:
        for seed in args.seeds:
            work = Path(scratch) / f"seed_{seed}"
            work.mkdir()
            market = KnownAnswerMarket(kind="time_of_day", bars=args.bars, seed=seed,
                                       breaks=[args.break_at / args.bars], **SUITE_SETTINGS["time_of_day"])
            path = work / "market.csv"
            write_market(market, path)
            source = pd.read_csv(path)
            break_time = break_times(market)[0]
            oracle, _ = oracle_sharpe(market, path, break_time, work)
            for scheme, after_break in SCHEMES.items():
                figures = run_scheme(scheme, after_break, source, args, seed, work, break_time)
                figures["post_break_edge_captured"] = figures["post_break_sharpe_per_bar"] / oracle
                results[scheme].append({"seed": seed, **figures})
                print(f"seed {seed} {scheme}: {json.dumps(figures)}", flush=True)
    summary: dict[str, Any] = {}
    for scheme, runs in results.items():
        captured = [run["post_break_edge_captured"] for run in runs]
        summary[scheme] = {key: [run[key] for run in runs] for key in ("bars_to_alarm", "bars_to_promotion",
                                                                        "post_break_edge_captured", "false_alarms")}
        summary[scheme]["post_break_edge_captured_mean"] = float(np.mean(captured))
        print(f"{scheme:<12} bars to alarm {summary[scheme]['bars_to_alarm']}, bars to promotion "
              f"{summary[scheme]['bars_to_promotion']}, oracle's Sharpe captured after the break "
              f"{[round(value, 2) for value in captured]} (mean {np.mean(captured):.2f})")
    print(json.dumps({**summary, "seeds": args.seeds, "bars": args.bars, "start": args.start, "break_at": args.break_at,
                      "step": args.step, "sizes": SIZES, "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
