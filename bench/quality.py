"""Quality at equal footing: original and optimized training on known-answer markets, several seeds.

For each market (``rltrader synth``: AR(1) momentum and time-of-day drift, written to
``bench/out/quality/data``) and each seed, the original method (every optimization off,
stock sb3-contrib engine) and the optimized one train with the same config, in this
process, one after the other. Per run it records:

- **edge captured on test**: the kept model's test return over the oracle's (the oracle
  trades the planted edge through the same ledger and costs);
- **wall time** of the run (preprocessing, iterations and the final report);
- **time-to-quality**: the run's time (preprocessing, earlier iterations, and the time into
  the iteration) at its first validation look whose edge captured reaches the *smaller* of
  the two methods' best validation edges on that market and seed, a level both methods
  reach. Where either method's best validation edge is not positive, neither "reached"
  anything and the pair is "not reached".

Looks differ by method (the original validates once per iteration, the optimized every
``eval_freq`` timesteps): a time-to-quality measured on the original's coarser grid is
what the original method delivers. Test figures judge; validation only times.

The speedup at equal quality is the median over the pairs both methods reached of original /
optimized time-to-quality; its 90% interval is a percentile bootstrap of that median over the
pairs (10,000 resamples, seeded), so the seeds' spread shows in it. Ten seeds by default (with five
the interval ran from 8.8x to 21.1x: too wide to say on which side of a 10x target a method is).

Usage: .venv/bin/python bench/quality.py [--profile bench] [--seeds 42 1042 ... 9042] [--bars 12000]
Last line: one JSON object (algorithm, markets, seeds, original_edge, optimized_edge, original_s, optimized_s,
original_time_to_quality_s, optimized_time_to_quality_s, speedup_at_equal_quality, speedup_interval_90, pairs_reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rltrader.config import load_config  # noqa: E402
from rltrader.data.synthetic import KnownAnswerMarket, write_market  # noqa: E402
from rltrader.records import RunSummary  # noqa: E402
from rltrader.training.run_state import RunState  # noqa: E402
from rltrader.training.trainer import Trainer  # noqa: E402

OUT = ROOT / "bench" / "out" / "quality"
MARKETS = ("momentum", "time_of_day")
METHODS = ("original", "optimized")


def validation_curve(run_dir: Path, summary: RunSummary) -> list[tuple[float, float]]:
    """(seconds into the run, validation edge captured) of every look, in order."""
    state = RunState.read(run_dir / "run_state.json")
    oracle = (summary.validation.oracle or {}).get("total_return")
    if state is None or not oracle or oracle <= 0:
        return []
    curve, before = [], state.preprocess_seconds
    for record in state.iterations:
        for look in record.validations:
            if look.total_return is not None and look.wall_seconds is not None:
                curve.append((before + look.wall_seconds, look.total_return / oracle))
        before += record.wall_seconds
    return curve


def first_reaching(curve: list[tuple[float, float]], level: float) -> float | None:
    return next((seconds for seconds, edge in curve if edge >= level), None)


def mean_sd(values: list[float]) -> str:
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} (sd {sd:.3f})"


def median_interval(ratios: list[float], level: float = 0.9, resamples: int = 10_000) -> list[float] | None:
    """Percentile bootstrap interval of the median of ``ratios`` (resampling the pairs)."""
    if len(ratios) < 2:
        return None
    import numpy as np

    draws = np.random.default_rng(0).choice(ratios, size=(resamples, len(ratios)), replace=True)
    medians = np.median(draws, axis=1)
    tail = (1 - level) / 2
    return [round(float(np.quantile(medians, tail)), 2), round(float(np.quantile(medians, 1 - tail)), 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="bench", help="profile from configs/default.yaml (default: bench)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42 + 1000 * k for k in range(10)],
                        help="training seeds, at least --iterations apart (iteration i uses seed + i)")
    parser.add_argument("--bars", type=int, default=12_000, help="bars per market (default 12,000)")
    parser.add_argument("--markets", nargs="+", default=list(MARKETS), choices=MARKETS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    shutil.rmtree(OUT, ignore_errors=True)
    base = load_config().with_profile(args.profile).with_overrides({"cache.dir": str(OUT / "cache")}, source="bench")
    data = {kind: OUT / "data" / f"{kind}.csv" for kind in args.markets}
    for kind, path in data.items():
        write_market(KnownAnswerMarket(kind=kind, bars=args.bars, seed=7), path)
    # numba compiles and caches on first use: one tiny untimed run of each method first
    smoke = base.with_profile("smoke")
    for method, config in (("original", smoke.original_method()), ("optimized", smoke)):
        Trainer(config, data[args.markets[0]], OUT / "warmup" / method).run()

    started = time.perf_counter()
    rows = []
    for kind in args.markets:
        for seed in args.seeds:
            config = base.with_overrides({"training.seed": seed}, source="bench")
            runs = {}
            for method in METHODS:
                run_dir = OUT / "runs" / kind / str(seed) / method
                summary = Trainer(config.original_method() if method == "original" else config, data[kind],
                                  run_dir).run()
                runs[method] = (summary, validation_curve(run_dir, summary))
            best = {method: max((edge for _, edge in curve), default=float("-inf"))
                    for method, (_, curve) in runs.items()}
            level = min(best.values())
            row = {"market": kind, "seed": seed, "level": level if level > 0 else None}
            for method, (summary, curve) in runs.items():
                row[f"{method}_edge"] = summary.test.agent.get("edge_captured")
                row[f"{method}_test_sharpe"] = summary.test.agent.get("sharpe")
                row[f"{method}_s"] = summary.total_time_seconds
                row[f"{method}_ttq_s"] = first_reaching(curve, level) if level > 0 else None
                row[f"{method}_looks"] = summary.trials
            rows.append(row)
            print(f"{kind:>12} seed {seed:>5}: edge on test original {row['original_edge']!s:>8.8} optimized "
                  f"{row['optimized_edge']!s:>8.8} | time {row['original_s']:.0f}s vs {row['optimized_s']:.0f}s | "
                  f"time to validation edge {level:.3f}: {row['original_ttq_s'] or 'not reached'} vs "
                  f"{row['optimized_ttq_s'] or 'not reached'}", flush=True)

    def column(key: str) -> list[float]:
        return [row[key] for row in rows if row[key] is not None]

    reached = [row for row in rows if row["original_ttq_s"] is not None and row["optimized_ttq_s"] is not None]
    ratios = [row["original_ttq_s"] / row["optimized_ttq_s"] for row in reached]
    original_ttq = sum(row["original_ttq_s"] for row in reached)
    optimized_ttq = sum(row["optimized_ttq_s"] for row in reached)
    print(f"\nprofile {args.profile}, {args.bars:,} bars per market, seeds {args.seeds}, "
          f"bench wall {time.perf_counter() - started:.0f}s")
    print(f"{'market':>12} {'seed':>5} {'orig edge':>10} {'opt edge':>9} {'orig s':>7} {'opt s':>6} {'level':>6} "
          f"{'orig ttq':>9} {'opt ttq':>8} {'orig looks':>10} {'opt looks':>9}")
    for row in rows:
        def cell(value: float | None, width: int, digits: int = 3) -> str:
            return f"{'n/a' if value is None else f'{value:.{digits}f}':>{width}}"
        print(f"{row['market']:>12} {row['seed']:>5} {cell(row['original_edge'], 10)} {cell(row['optimized_edge'], 9)} "
              f"{row['original_s']:>7.0f} {row['optimized_s']:>6.0f} {cell(row['level'], 6, 2)} "
              f"{cell(row['original_ttq_s'], 9, 0)} {cell(row['optimized_ttq_s'], 8, 0)} "
              f"{row['original_looks']:>10} {row['optimized_looks']:>9}")
    for kind in args.markets:
        for method in METHODS:
            edges = [row[f"{method}_edge"] for row in rows
                     if row["market"] == kind and row[f"{method}_edge"] is not None]
            print(f"{kind:>12} {method:>9}: test edge captured mean {mean_sd(edges)}, per seed "
                  f"{[round(edge, 3) for edge in edges]}")
    interval = median_interval(ratios)
    print(f"algorithm {base.training.algorithm}: time-to-quality reached by both in {len(reached)} of {len(rows)} "
          f"market x seed pairs; median ratio original/optimized "
          f"{statistics.median(ratios) if ratios else float('nan'):.2f}x (90% bootstrap interval {interval}), "
          f"sum {original_ttq:.0f}s vs {optimized_ttq:.0f}s")
    print(json.dumps({
        "algorithm": base.training.algorithm,
        "markets": list(args.markets),
        "seeds": args.seeds,
        "original_edge": [round(value, 4) for value in column("original_edge")],
        "optimized_edge": [round(value, 4) for value in column("optimized_edge")],
        "original_s": [round(value, 1) for value in column("original_s")],
        "optimized_s": [round(value, 1) for value in column("optimized_s")],
        "original_time_to_quality_s": [None if row["original_ttq_s"] is None else round(row["original_ttq_s"], 1)
                                       for row in rows],
        "optimized_time_to_quality_s": [None if row["optimized_ttq_s"] is None else round(row["optimized_ttq_s"], 1)
                                        for row in rows],
        "speedup_at_equal_quality": round(statistics.median(ratios), 3) if ratios else None,
        "speedup_interval_90": interval,
        "pairs_reached": len(reached),
    }))


if __name__ == "__main__":
    main()
