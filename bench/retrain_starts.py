"""How should a challenger start: cold, warm (the champion's weights and optimizer) or warm with a reset?

The choice of ``retrain.start``'s default is measured here, not assumed. For each start and seed, a
champion/challenger replay (``bench/retrain.py``'s: bars appended weekly, a retrain every EVERY weeks,
the registry deciding, paper trading following the champion) runs on:

* the known-answer ``regime_change`` market, whose time-of-day blocks swap signs 30% into the replay
  (the oracle's return is known, so the edge captured is too);
* the shipped gold H1 file's last WEEKS weeks.

Figures per start, over seeds and retrains: the challengers' held-out return against the champion's
on the same window (each retrain's own out-of-sample window, which selected nothing: the honest
measure of challenger quality), how often the paired test promoted, and the gated paper account's
return and Sharpe with its interval. Replays run side by side (``--parallel``); each is serial
inside, as warm starts depend on the champion before them.

The last line is one JSON object: per market and start, the mean figures and their spread over seeds.

Usage: .venv/bin/python bench/retrain_starts.py [--seeds 1 2 3] [--regime-weeks 24] [--gold-weeks 24] [--every 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
STARTS = ("cold", "warm", "warm_reset")


def _one(job: tuple[str, str, int, int, int, dict[str, Any], str, str]) -> dict[str, Any]:
    """A worker: one gated replay with one start and seed; its figures."""
    import torch

    torch.set_num_threads(1)
    import retrain as replays  # bench/retrain.py

    market, source, weeks, every, seed, sizes, start, work = job
    began = time.perf_counter()
    replay = replays.Replay(f"{market}-{start}-{seed}", Path(source), weeks, every, sizes, Path(work), 1, seed, start)
    result = replay.replay()
    out = replays.policies(replay, result)
    compared = [week for week in result["weekly"] if "challenger_return" in week]
    return {"market": market, "start": start, "seed": seed, "seconds": time.perf_counter() - began,
            "retrains": len(compared), "promotions": out["promotions"],
            "challenger_minus_champion": [week["challenger_return"] - week["champion_return"] for week in compared],
            "challenger_return": [week["challenger_return"] for week in compared],
            "gated": out["gated"], "never": out["never"], "first_bar": out["first_bar"]}


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def _mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean over seeds and its 95% half-width (Student's t with seeds - 1 degrees of freedom).

    One value per seed: a seed's retrains share overlapping held-out windows, so they are not
    independent, while seeds are."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()) if len(array) else float("nan"), float("nan")
    quantile = T_975.get(len(array) - 1, 1.96)
    return float(array.mean()), float(quantile * array.std(ddof=1) / np.sqrt(len(array)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--regime-weeks", type=int, default=24)
    parser.add_argument("--gold-weeks", type=int, default=24)
    parser.add_argument("--every", type=int, default=2, help="retrain every N weeks (default 2)")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--profile", default=None, help="the challengers' training budget (default: retrain.profile)")
    args = parser.parse_args()
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="rltrader-starts-"))

    import retrain as replays

    from rltrader.config import load_config
    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import change_time, write_market

    defaults = load_config().retrain
    budget = {"profile": args.profile} if args.profile else {}
    gold_sizes = {"train_bars": defaults.train_bars, "validation_bars": defaults.validation_bars,
                  "holdout_bars": defaults.holdout_bars, **budget}
    regime_sizes = {"train_bars": 1500, "validation_bars": 480, "holdout_bars": 240, **budget}
    before = 420 + 1500 + 480 + 240 + 50 + 120
    bars = before + args.regime_weeks * 120 + 60
    market = KnownAnswerMarket(kind="regime_change", bars=bars, seed=7, bar_minutes=60,
                               change_at=round((before + 0.3 * args.regime_weeks * 120) / bars, 4),
                               start="2024-01-01 00:00")
    regime_file = work / "sources" / "regime_change.csv"
    regime_file.parent.mkdir(parents=True, exist_ok=True)
    write_market(market, regime_file)
    jobs = [(name, str(source), weeks, args.every, seed, sizes, start, str(work))
            for name, source, weeks, sizes in (("regime", regime_file, args.regime_weeks, regime_sizes),
                                               ("gold", replays.GOLD, args.gold_weeks, gold_sizes))
            for start in STARTS for seed in args.seeds]
    print(f"{len(jobs)} replays ({', '.join(STARTS)} x seeds {args.seeds} x regime {args.regime_weeks} weeks and gold "
          f"{args.gold_weeks} weeks, a retrain every {args.every} weeks); regime changes at {change_time(market)}",
          flush=True)
    results = []
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_one, jobs):
            results.append(result)
            print(f"  {result['market']:<6} {result['start']:<10} seed {result['seed']}: {result['retrains']} "
                  f"retrains, {result['promotions']} promotions, gated return "
                  f"{100 * result['gated']['total_return']:+.2f}% ({result['seconds']:.0f} s)", flush=True)
    oracle_curve = replays.oracle_equity(regime_file, results[0]["first_bar"])
    oracle = float(oracle_curve[-1] / oracle_curve[0] - 1)
    summary: dict[str, Any] = {"oracle_return": oracle, "seeds": args.seeds, "every": args.every,
                               "seconds": round(time.perf_counter() - started, 1)}
    for name in ("regime", "gold"):
        print(f"\n{name}: per start, over {len(args.seeds)} seeds")
        for start in STARTS:
            rows = [result for result in results if result["market"] == name and result["start"] == start]
            per_seed = [float(np.mean(row["challenger_minus_champion"])) for row in rows
                        if row["challenger_minus_champion"]]
            differences = [value for row in rows for value in row["challenger_minus_champion"]]
            gated = [row["gated"]["total_return"] for row in rows]
            # a gated account that never traded has no Sharpe (None)
            sharpe = [row["gated"]["sharpe"] for row in rows if row["gated"]["sharpe"] is not None]
            mean, half = _mean_interval(per_seed)
            entry = {"challenger_minus_champion_mean": mean, "challenger_minus_champion_ci95": half,
                     "per_seed": per_seed, "gated_return_per_seed": gated,
                     "comparisons": len(differences), "promotions": sum(row["promotions"] for row in rows),
                     "retrains": sum(row["retrains"] for row in rows), "gated_return_mean": float(np.mean(gated)),
                     "gated_return_sd": float(np.std(gated, ddof=1)) if len(gated) > 1 else None,
                     "gated_sharpe_mean": float(np.mean(sharpe)) if sharpe else None}
            if name == "regime" and oracle > 0:
                entry["gated_edge_captured_mean"] = float(np.mean(gated)) / oracle
            summary[f"{name}_{start}"] = entry
            edge = (f", edge captured {entry['gated_edge_captured_mean']:.2f}"
                    if "gated_edge_captured_mean" in entry else "")
            sharpe_text = "n/a" if entry["gated_sharpe_mean"] is None else f"{entry['gated_sharpe_mean']:.2f}"
            print(f"  {start:<10} challenger - champion held-out return {100 * mean:+.2f}% +- {100 * half:.2f} "
                  f"over {len(per_seed)} seeds ({len(differences)} comparisons), "
                  f"{entry['promotions']}/{entry['retrains']} promoted; gated "
                  f"paper return {100 * entry['gated_return_mean']:+.2f}% "
                  f"(sd {100 * (entry['gated_return_sd'] or 0):.2f}), "
                  f"Sharpe {sharpe_text}{edge}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
