"""Walk-forward on 10 years of XAUUSD H1: serial vs parallel, cold vs warm-started folds.

Three runs of the real command (``rltrader walkforward``, each with its own results
directory and a fresh temporary Prefect server, so each wall time is what a user waits),
on the same folds and seeds, one after the other on this machine, in performance mode
(quiet mode keeps one run going, whatever ``--parallel`` says):

1. cold folds, ``--parallel 1``  -> ``serial_s``
2. cold folds, ``--parallel 2``  -> ``parallel_s`` (= ``cold_s``)
3. warm-started folds (``--warm_start_folds``), ``--parallel 2`` -> ``warm_s``

Warm against cold "to the same validation score": for every fold after the first and every
seed, the target is the lower of the two runs' best validation scores (both reached it),
and each run's timesteps and seconds until its best-so-far first reached it are read from
its validation looks. ``warm_timesteps_saved`` sums cold minus warm over those pairs.

The headline Sharpe is the cold walk-forward's (the default), stitched over the six test
windows and averaged over the seeds, with its 95% interval.

Usage: .venv/bin/python bench/walkforward.py [--folds 6] [--seeds 42 1042] [--profile NAME]
(without --profile, the folds train on the config's ``walk_forward.profile``: the default's, train's own budget)
Writes bench/out/walkforward/ (results of the three runs, bench.json). Last line: one JSON object
with folds, seeds, serial_s, parallel_s, cold_s, warm_s, warm_timesteps_saved, stitched_sharpe,
stitched_sharpe_ci (and more).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
OUT = ROOT / "bench" / "out" / "walkforward"


def walk_forward(name: str, folds: int, seeds: list[int], profile: str | None, parallel: int,
                 warm: bool) -> tuple[float, Path]:
    """Run ``rltrader walkforward`` once from scratch; its wall time and its results directory."""
    results = OUT / "results"
    shutil.rmtree(results / f"walkforward-{name}", ignore_errors=True)
    command = [sys.executable, "-m", "rltrader", "walkforward", "--data_path", str(DATA), "--folds", str(folds),
               "--seeds", *map(str, seeds), *(["--profile", profile] if profile else []), "--parallel", str(parallel),
               "--name", name, "--results_dir", str(results), "--cache_dir", str(OUT / "cache"),
               "--settings_file", str(OUT / "settings.json"), *(["--warm_start_folds"] if warm else [])]
    print(f"\n$ rltrader walkforward ... --parallel {parallel}{' --warm_start_folds' if warm else ''} "
          f"--name {name}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    return time.perf_counter() - started, results / f"walkforward-{name}"


def reach(curve: list[dict[str, Any]], target: float) -> tuple[int, float]:
    """Timesteps and seconds at the first look whose best-so-far reached ``target``."""
    point = next(point for point in curve if point["best_score"] >= target)
    return point["timesteps"], point["seconds"]


def warm_against_cold(cold_root: Path, warm_root: Path) -> dict[str, Any]:
    cold = {(run["fold"], run["seed"]): run for run in json.loads((cold_root / "folds.json").read_text())}
    warm = {(run["fold"], run["seed"]): run for run in json.loads((warm_root / "folds.json").read_text())}
    pairs = []
    for key in sorted(key for key in warm if key[0] > 0 and key in cold):
        target = min(cold[key]["best_validation"], warm[key]["best_validation"])
        cold_steps, cold_seconds = reach(cold[key]["curve"], target)
        warm_steps, warm_seconds = reach(warm[key]["curve"], target)
        pairs.append({"fold": key[0] + 1, "seed": key[1], "target": round(target, 3),
                      "cold_best": round(cold[key]["best_validation"], 3),
                      "warm_best": round(warm[key]["best_validation"], 3),
                      "cold_timesteps": cold_steps, "warm_timesteps": warm_steps,
                      "cold_seconds": cold_seconds, "warm_seconds": warm_seconds,
                      "cold_total_timesteps": cold[key]["timesteps"], "warm_total_timesteps": warm[key]["timesteps"]})
    return {"pairs": pairs,
            "warm_timesteps_saved": sum(p["cold_timesteps"] - p["warm_timesteps"] for p in pairs),
            "warm_seconds_saved": round(sum(p["cold_seconds"] - p["warm_seconds"] for p in pairs), 1),
            "total_timesteps_cold": sum(p["cold_total_timesteps"] for p in pairs),
            "total_timesteps_warm": sum(p["warm_total_timesteps"] for p in pairs),
            "warm_best_at_least_cold": sum(p["warm_best"] >= p["cold_best"] for p in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1042])
    parser.add_argument("--profile", default=None, help="every fold's profile (default: the config's)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "settings.json").write_text(json.dumps({"performance_mode": "performance"}))
    profile = args.profile or "the config's (walk_forward.profile)"
    print(f"{DATA.name}: {args.folds} folds x seeds {args.seeds}, profile {profile}, {os.cpu_count()} cores")

    serial_s, _ = walk_forward("serial", args.folds, args.seeds, args.profile, 1, warm=False)
    parallel_s, cold_root = walk_forward("cold", args.folds, args.seeds, args.profile, 2, warm=False)
    warm_s, warm_root = walk_forward("warm", args.folds, args.seeds, args.profile, 2, warm=True)

    cold = json.loads((cold_root / "summary.json").read_text())["aggregate"]
    warm = json.loads((warm_root / "summary.json").read_text())["aggregate"]
    comparison = warm_against_cold(cold_root, warm_root)
    print(f"\nwall time: serial {serial_s:.0f} s, --parallel 2 {parallel_s:.0f} s ({serial_s / parallel_s:.2f}x); "
          f"warm-started folds {warm_s:.0f} s against cold {parallel_s:.0f} s (both --parallel 2)")
    print("warm vs cold, to the same validation score (the lower of the two bests), folds 2+:")
    for pair in comparison["pairs"]:
        print(f"  fold {pair['fold']} seed {pair['seed']}: target {pair['target']:.3f} (cold best "
              f"{pair['cold_best']:.3f}, warm best {pair['warm_best']:.3f}); timesteps cold "
              f"{pair['cold_timesteps']:,} warm {pair['warm_timesteps']:,}; seconds cold {pair['cold_seconds']:.0f} "
              f"warm {pair['warm_seconds']:.0f}")
    print(f"  saved {comparison['warm_timesteps_saved']:,} timesteps and {comparison['warm_seconds_saved']:.0f} s "
          f"over {len(comparison['pairs'])} runs; trained in all {comparison['total_timesteps_warm']:,} warm against "
          f"{comparison['total_timesteps_cold']:,} cold; warm best >= cold best in "
          f"{comparison['warm_best_at_least_cold']} of {len(comparison['pairs'])}")
    for label, figures in (("cold", cold), ("warm", warm)):
        low, high = figures["stitched_sharpe_ci"]
        print(f"stitched out-of-sample Sharpe ({label}): {figures['stitched_sharpe']:.2f} [{low:.2f}, {high:.2f}], "
              f"buy-and-hold {figures['buy_and_hold']['sharpe']:.2f}; deflated {figures['deflated_sharpe']:.2f} over "
              f"{figures['trials']} looks; {figures['fraction_beating_buy_and_hold']:.0%} of fold runs beat "
              "buy-and-hold's return")
    result = {"folds": args.folds, "seeds": args.seeds, "profile": args.profile,
              "serial_s": round(serial_s, 1), "parallel_s": round(parallel_s, 1), "cold_s": round(parallel_s, 1),
              "warm_s": round(warm_s, 1), "parallel_speedup": round(serial_s / parallel_s, 2),
              "warm_timesteps_saved": comparison["warm_timesteps_saved"],
              "warm_seconds_saved": comparison["warm_seconds_saved"],
              "stitched_sharpe": round(cold["stitched_sharpe"], 3),
              "stitched_sharpe_ci": [round(value, 3) for value in cold["stitched_sharpe_ci"]],
              "buy_and_hold_sharpe": round(cold["buy_and_hold"]["sharpe"], 3),
              "deflated_sharpe": cold["deflated_sharpe"], "trials": cold["trials"],
              "warm_stitched_sharpe": round(warm["stitched_sharpe"], 3)}
    (OUT / "bench.json").write_text(json.dumps({**result, "warm_vs_cold": comparison}, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
