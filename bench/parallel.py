"""Parallel candidates: the same N candidates per iteration, one at a time against side by side.

Both runs are the ``train-pipeline`` flow with ``parallel_candidates=N`` on the shipped
M15 bars, the same config and seeds; the only difference is how many candidates train
at once (``candidate_workers`` 1 against N) on the local process-pool runner, or on the
Dask cluster at ``--dask_address`` (where the serial run uses the local runner with one
worker). Both pin quiet mode (one torch thread per candidate), so N candidates fit N
cores; preprocessing is warmed first, so it is in neither time. Each run's wall time is
the whole flow (worker start-up included), measured in this process.

The flows talk to ``PREFECT_API_URL`` if set, otherwise to one temporary server.
Usage: .venv/bin/python bench/parallel.py [--candidates 2] [--iterations 2] [--timesteps 8192]
                                         [--dask_address tcp://host:8786]
The last line printed is one JSON object: serial_s, parallel_s, runner, and more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
OUT = ROOT / "bench" / "out" / "parallel"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=8192, help="timesteps of iteration 1 (default 8192)")
    parser.add_argument("--dask_address", default=None, help="an existing Dask scheduler (default: local processes)")
    args = parser.parse_args()

    from flows.train import train_pipeline
    from rltrader.config import load_config
    from rltrader.features.preparation import preprocess
    from rltrader.jobs.requests import TrainRequest
    from rltrader.runtime.performance_mode import write_mode

    shutil.rmtree(OUT, ignore_errors=True)
    cache = OUT / "cache"
    preprocess(SAMPLE, load_config().with_overrides({"cache.dir": str(cache)}))
    settings = OUT / "settings.json"
    write_mode(settings, "quiet")
    common = {"data_path": str(SAMPLE), "iterations": args.iterations, "total_timesteps": args.timesteps,
              "min_timesteps": args.timesteps // 2, "eval_freq": args.timesteps // 4,
              "checkpoint_freq": args.timesteps // 4, "parallel_candidates": args.candidates,
              "settings_file": str(settings), "cache_dir": str(cache)}
    runs = {"serial": {"candidate_workers": 1}, "parallel": {"dask_address": args.dask_address}}
    seconds, chosen, best = {}, {}, {}
    for name, extra in runs.items():
        started = time.perf_counter()
        summary = train_pipeline(TrainRequest(**common, **extra, results_dir=str(OUT / name)))
        seconds[name] = time.perf_counter() - started
        state = json.loads((OUT / name / "42" / "run_state.json").read_text(encoding="utf-8"))
        chosen[name] = [record["candidate"] for record in state["iterations"]]
        best[name] = summary.best_model.score
        print(f"{name:<9} {seconds[name]:7.1f} s  candidates kept {chosen[name]}  best validation "
              f"{summary.best_model.metric} {best[name]:.3f}", flush=True)
    runner = f"dask {args.dask_address}" if args.dask_address else f"process-pool x{args.candidates}"
    print(f"\n{args.candidates} candidates x {args.iterations} iterations: serial {seconds['serial']:.1f} s, "
          f"parallel {seconds['parallel']:.1f} s ({runner}), {seconds['serial'] / seconds['parallel']:.2f}x")
    print(json.dumps({"serial_s": round(seconds["serial"], 1), "parallel_s": round(seconds["parallel"], 1),
                      "runner": runner, "speedup": round(seconds["serial"] / seconds["parallel"], 2),
                      "candidates": args.candidates, "iterations": args.iterations, "timesteps": args.timesteps,
                      "same_choice": chosen["serial"] == chosen["parallel"], "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
