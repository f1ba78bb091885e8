"""The live speedup estimate against a measurement: the calibrated cost of one original iteration, then that
iteration run for real, in turns.

A single run's ``speedup so far`` divides what the original method (every optimization off, stock
sb3-contrib) would need by the run's own wall time; what it would need comes from a calibration of stock
sb3-contrib on this machine and config (:mod:`rltrader.training.calibration`). This script checks that
figure where it can be checked: each round calibrates afresh (a temporary calibration directory), reads
the estimate for one iteration of the original's fixed budget, then trains one such iteration (the
``Trainer`` on ``config.original_method()``, as ``--use_original_training`` does) and takes its wall
time, validations included. The rounds alternate in one process, so the machine's drift over minutes
touches both sides alike.

Usage: .venv/bin/python bench/speedup_estimate.py [--profile demo] [--rounds 3] [--threads 1]
The last line is one JSON object: ``estimated_s`` and ``measured_s`` per round, ``ratio`` (estimated over
measured, per round and ``ratio_median``; ``first_reset_only_ratio``: the estimate charging only each iteration's
first reset, as before 2026-12-07), the calibrations' figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rltrader.config import load_config  # noqa: E402
from rltrader.env import MarketData  # noqa: E402
from rltrader.features.preparation import preprocess  # noqa: E402
from rltrader.training import calibration  # noqa: E402
from rltrader.training.budget import original_budget  # noqa: E402
from rltrader.training.trainer import Trainer  # noqa: E402

SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="profile of configs/default.yaml (the README's: demo)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (quiet mode trains on 1)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="speedup-estimate-") as scratch:
        config = load_config().with_profile(args.profile).with_overrides({"cache.dir": str(Path(scratch) / "cache")})
        market = MarketData.from_prepared(preprocess(SAMPLE, config), config, SAMPLE)
        original = config.with_overrides({"training.iterations": 1}).original_method()
        budget = original_budget(config.training)
        print(f"profile {args.profile}: one original iteration = {budget:,} timesteps, stock sb3-contrib, "
              f"{args.threads} torch thread(s)", flush=True)
        rounds = []
        for round_number in range(args.rounds):
            torch.set_num_threads(args.threads)
            os.environ[calibration.DIRECTORY_VARIABLE] = tempfile.mkdtemp(dir=scratch)
            calibrated = calibration.original_throughput(config, market)
            estimated = calibrated.iteration_seconds(budget)
            first_only = budget / calibrated.timesteps_per_second + calibrated.first_update_extra_seconds
            torch.set_num_threads(args.threads)
            summary = Trainer(original, SAMPLE, Path(tempfile.mkdtemp(dir=scratch))).run()
            measured = summary.iterations[0].wall_seconds
            rounds.append({"estimated_s": round(estimated, 2), "measured_s": round(measured, 2),
                           "ratio": round(estimated / measured, 3),
                           "first_reset_only_ratio": round(first_only / measured, 3),
                           "steady_timesteps_per_second": calibrated.timesteps_per_second,
                           "first_reset_extra_s": calibrated.first_update_extra_seconds,
                           "later_reset_extra_s": calibrated.reset_update_extra_seconds,
                           "reset_rollouts": calibrated.reset_rollouts(budget)})
            print(f"round {round_number + 1}: estimated {estimated:.1f} s (steady "
                  f"{calibrated.timesteps_per_second:,.0f} timesteps/s, {calibrated.reset_rollouts(budget)} rollouts "
                  f"with a reset), measured {measured:.1f} s: {estimated / measured:.2f}x (counting the first reset "
                  f"only, as before issue 47's fix: {first_only / measured:.2f}x)", flush=True)
    ratios = [entry["ratio"] for entry in rounds]
    print(f"estimate over measurement: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
          f"{max(ratios):.2f} over {len(ratios)} rounds")
    print(json.dumps({"profile": args.profile, "threads": args.threads, "timesteps": budget, "rounds": rounds,
                      "ratio_median": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
