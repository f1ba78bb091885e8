"""Original vs optimized training, side by side: a thin wrapper over ``rltrader train --benchmark_mode``.

For each seed it runs ``rltrader train --benchmark_mode`` in a fresh process on the
shipped M15 sample (``data/XAUUSDm_15min.csv``) with the stated profile: the original
method (same config, every optimization off, stock sb3-contrib) and then the optimized
one, same data, config and seed. Results go to a fresh ``bench/out/benchmark_mode/``
(never resumed: a resumed run's times would not be comparable).

Target (issue): speedup >= 5x, optimized validation score not worse than the original's
beyond the seed-to-seed spread.
Seeds are far apart because iteration i trains with seed + i: runs with seeds 43 and 44
would share three of their four iteration seeds, and the original method (a fresh model
per iteration) would then pick the very same model in both.
Both methods run in the same performance mode, pinned by a settings file of the bench's
own (``--mode``, default quiet: the configured batch and epochs, one torch thread), so a
``settings.json`` in the project cannot change the figures.
Usage: .venv/bin/python bench/benchmark_mode.py [--profile bench] [--seeds 42 1042 2042] [--mode quiet]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
OUT = ROOT / "bench" / "out" / "benchmark_mode"


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="bench", help="profile from configs/default.yaml (default: bench)")
    parser.add_argument("--mode", choices=["quiet", "performance"], default="quiet",
                        help="performance mode of both methods (default: quiet)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1042, 2042],
                        help="run seeds; keep them at least --iterations apart: iteration i uses seed + i")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    settings = OUT / "settings.json"
    OUT.mkdir(parents=True)
    settings.write_text(json.dumps({"performance_mode": args.mode}))
    started = time.perf_counter()
    rows = []
    for seed in args.seeds:
        command = [sys.executable, "-m", "rltrader", "train", "--benchmark_mode", "--benchmark_seeds", "1",
                   "--data_path", str(SAMPLE),
                   "--profile", args.profile, "--seed", str(seed), "--results_dir", str(OUT),
                   "--settings_file", str(settings),
                   "--cache_dir", str(OUT / "cache")]
        subprocess.run(command, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        rows.append(json.loads((OUT / f"benchmark-{seed}" / "comparison.json").read_text()))

    figures = {
        "original_s": [row["original"]["total_time_seconds"] for row in rows],
        "optimized_s": [row["optimized"]["total_time_seconds"] for row in rows],
        "original_val_sharpe": [row["original"]["validation_sharpe"] for row in rows],
        "optimized_val_sharpe": [row["optimized"]["validation_sharpe"] for row in rows],
        "original_test_sharpe": [row["original"]["test_sharpe"] for row in rows],
        "optimized_test_sharpe": [row["optimized"]["test_sharpe"] for row in rows],
    }
    speedup = sum(figures["original_s"]) / sum(figures["optimized_s"])
    print(f"\nprofile {args.profile}, seeds {args.seeds}, wall {time.perf_counter() - started:.0f}s")
    print(f"{'seed':>6} {'original s':>11} {'optimized s':>12} {'speedup':>8} {'orig val':>9} {'opt val':>8} "
          f"{'orig test':>10} {'opt test':>9} {'orig steps':>11} {'opt steps':>10}")
    for seed, row in zip(args.seeds, rows, strict=True):
        o, p = row["original"], row["optimized"]
        print(f"{seed:>6} {o['total_time_seconds']:>11.1f} {p['total_time_seconds']:>12.1f} {row['speedup']:>7.2f}x "
              f"{o['validation_sharpe'] or 0:>9.2f} {p['validation_sharpe'] or 0:>8.2f} {o['test_sharpe'] or 0:>10.2f} "
              f"{p['test_sharpe'] or 0:>9.2f} {o['total_timesteps']:>11,} {p['total_timesteps']:>10,}")
    val_o, val_p = figures["original_val_sharpe"], figures["optimized_val_sharpe"]
    print(f"speedup (total time) {speedup:.2f}x; validation Sharpe mean original {statistics.mean(val_o):.2f} "
          f"(spread {_spread(val_o):.2f}), optimized {statistics.mean(val_p):.2f} (spread {_spread(val_p):.2f})")
    print(json.dumps({**{k: [round(v, 3) if v is not None else None for v in vals] for k, vals in figures.items()},
                      "speedup": round(speedup, 3), "profile": args.profile, "mode": args.mode}))


if __name__ == "__main__":
    main()
