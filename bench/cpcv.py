"""Combinatorial purged cross-validation on 10 years of XAUUSD H1 and on known-answer markets.

Each case is one run of the real command (``rltrader walkforward --scheme cpcv``, its own results
directory and a fresh temporary Prefect server, so its wall time is what a user waits), in
performance mode with ``--parallel 2``, on the current defaults (every split's run uses the
config's ``walk_forward.profile``: null since stop 59, the budget ``rltrader train`` uses; ``quick`` before):

1. ``gold_h1``: the shipped XAUUSD H1 file, N groups, k tested per split (6 and 2: 15 splits, 5 paths).
2. ``momentum``: a known-answer market with a planted edge (AR(1) returns, phi 0.3): the agent's
   paths should beat buy-and-hold on most paths and capture part of the oracle's Sharpe.
3. ``noise``: the same generator with phi 0 (a random walk, nothing to learn): no path's Sharpe should
   be told apart from zero (their intervals span it) and beating buy-and-hold a coin toss across paths.

The known-answer markets are written by ``rltrader synth`` here (seeded), not shipped.

Usage: .venv/bin/python bench/cpcv.py [--groups 6] [--test_groups 2] [--seeds 42 1042] [--cases ...]
Writes bench/out/cpcv/ (each case's results, bench.json) and bench/figures/cpcv_xauusd_h1.png. Last line:
one JSON object with the gold file's paths, splits, path_sharpe_quantiles, p_beats_buy_and_hold, pbo and
seconds, and the same per case under ``markets``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
OUT = ROOT / "bench" / "out" / "cpcv"
FIGURE = ROOT / "bench" / "figures" / "cpcv_xauusd_h1.png"
SYNTH = {"momentum": ["momentum", "--phi", "0.3"], "noise": ["momentum", "--phi", "0.0"]}
SYNTH_BARS = 12_000


def synth(case: str, out: Path) -> Path:
    """Write the case's known-answer market (M15, seeded) with ``rltrader synth``."""
    target = out / f"{case}.csv"
    kind, *options = SYNTH[case]
    subprocess.run([sys.executable, "-m", "rltrader", "synth", kind, "--out", str(target), "--bars", str(SYNTH_BARS),
                    "--seed", "11", *options], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return target


def run_case(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One CPCV by the real command; its summary's figures and the wall time."""
    results = OUT / name
    shutil.rmtree(results, ignore_errors=True)
    settings = OUT / "settings.json"
    settings.write_text(json.dumps({"performance_mode": "performance"}))
    command = [sys.executable, "-m", "rltrader", "walkforward", "--data_path", str(data), "--scheme", "cpcv",
               "--groups", str(args.groups), "--test_groups", str(args.test_groups), "--seeds",
               *map(str, args.seeds), "--parallel", "2", "--settings_file", str(settings), "--results_dir",
               str(results), "--cache_dir", str(OUT / "cache"), "--name", name]
    print(f"\n$ {' '.join(command[2:])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cpcv-bench-prefect-") as home:
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200", "PREFECT_HOME": home})
        seconds = time.perf_counter() - started
    summary = json.loads((results / f"walkforward-{name}" / "summary.json").read_text())
    figures = summary["aggregate"]
    overfitting = figures.get("seed_overfitting") or {}
    return {"paths": figures["paths"], "splits": figures["splits"], "runs": figures["runs"],
            "path_bars": figures.get("path_bars"), "path_sharpes": figures.get("path_sharpes"),
            "path_sharpe_quantiles": figures.get("path_sharpe_quantiles"),
            "buy_and_hold_sharpe": (figures.get("buy_and_hold") or {}).get("sharpe"),
            "p_beats_buy_and_hold": figures.get("p_beats_buy_and_hold"),
            "pbo": overfitting.get("pbo"), "pbo_trials": overfitting.get("trials"),
            "seed_median_path_sharpes": figures.get("seed_median_path_sharpes"),
            "median_path": figures.get("median_path"),
            "path_edge_captured": figures.get("path_edge_captured"),
            "oracle_sharpe": (figures.get("oracle") or {}).get("sharpe"),
            "trials": figures.get("trials"), "train_seconds": figures.get("train_seconds"),
            "seconds": round(seconds, 1), "plot": str(Path(summary["files"]["plot"]).relative_to(ROOT))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=6, help="N, consecutive groups")
    parser.add_argument("--test_groups", type=int, default=2, help="k, groups tested per split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1042], help="a run per split and seed")
    parser.add_argument("--cases", nargs="+", default=["gold_h1", *SYNTH], choices=["gold_h1", *SYNTH])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cases: dict[str, dict[str, Any]] = {}
    for case in args.cases:
        data = GOLD if case == "gold_h1" else synth(case, OUT)
        cases[case] = run_case(case, data, args)
    if "gold_h1" in cases:
        FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / cases["gold_h1"]["plot"], FIGURE)
    print("\ncase        paths  splits  seconds  path Sharpe 5% / 50% / 95%   median path [95%]   B&H Sharpe  "
          "beats B&H  PBO (seeds)  oracle captured (median path)")
    for case, figures in cases.items():
        quantiles = figures["path_sharpe_quantiles"] or {}
        captured = (figures["path_edge_captured"] or {}).get("50%")
        median = figures["median_path"] or {}
        low, high = median.get("sharpe_ci") or (float("nan"), float("nan"))
        print(f"{case:<11} {figures['paths']:>5}  {figures['splits']:>6}  {figures['seconds']:>7.0f}  "
              f"{quantiles.get('5%', float('nan')):>7.2f} / {quantiles.get('50%', float('nan')):5.2f} / "
              f"{quantiles.get('95%', float('nan')):5.2f}   {median.get('sharpe', float('nan')):5.2f} "
              f"[{low:.2f}, {high:.2f}]  {figures['buy_and_hold_sharpe']:>10.2f}  "
              f"{figures['p_beats_buy_and_hold']:>9.0%}  "
              f"{'n/a' if figures['pbo'] is None else format(figures['pbo'], '.2f'):>11}  "
              f"{'n/a' if captured is None else f'{captured:.2f}'}")
    headline = cases.get("gold_h1") or next(iter(cases.values()))
    result = {key: headline[key] for key in ("paths", "splits", "path_sharpe_quantiles", "p_beats_buy_and_hold",
                                             "pbo", "seconds")}
    result.update({"groups": args.groups, "test_groups": args.test_groups, "seeds": args.seeds,
                   "markets": cases})
    (OUT / "bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
