"""Trial settings trained on the study's markets with a few seeds: validation and test fraction of the oracle.

The diagnosis behind issue 37's observation and reward changes (bench/README.md, "the study that chose the
defaults"): a study trial's settings (``--overrides``, dotted keys as JSON) on top of the study's config,
trained on the study's markets (seed-100 bars, written by ``bench/default_study.py``), two runs at a time,
each in a fresh process in quiet mode. It prints, per run, the best validation Sharpe and the kept model's
test Sharpe as fractions of the oracle's, the seconds and the timesteps. These runs look at the study
markets' test splits: the learning-curves bench judges on other bars.

Usage: .venv/bin/python bench/setting_runs.py NAME --overrides '{"features.calendar_harmonics": 3}'
       [--markets time_of_day volume] [--seeds 1 2]
Last line: JSON with name, overrides and one row per run (market, seed, validation_fraction,
test_fraction, seconds, timesteps).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.default_study import OUT, STUDY_KINDS, STUDY_SEED  # noqa: E402
from rltrader.data.synthetic import suite_market, write_market  # noqa: E402


def one_run(job: tuple[str, dict[str, Any], str, int]) -> dict[str, Any]:
    """One training run in its own process: the kept model's validation and test fractions of the oracle."""
    import logging

    from rltrader.config import load_config
    from rltrader.training.spec import RunSpec
    from rltrader.training.trainer import Trainer
    from rltrader.tuning.trial import oracle_validation_sharpe

    logging.basicConfig(level=logging.ERROR)
    name, overrides, data, seed = job
    market = Path(data).stem
    config = load_config(OUT / "study.yaml").with_overrides(
        {**overrides, "training.seed": seed, "cache.dir": str(OUT / "cache")}, source=f"bench setting {name}")
    run_dir = OUT / "setting_runs" / name / market / str(seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    trainer = Trainer.from_spec(RunSpec(config=config, data_path=data, run_dir=str(run_dir),
                                        settings_file=str(OUT / "settings.json")))
    trainer.train(log_resume=False)
    seconds = time.perf_counter() - started
    summary = trainer.finish()
    oracle = oracle_validation_sharpe(trainer)
    test = summary.test.agent.get("sharpe")
    return {"market": market, "seed": seed,
            "validation_fraction": None if oracle is None else round(trainer.state.best.score / oracle, 3),
            "test_fraction": None if test is None else round(test / summary.test.oracle["sharpe"], 3),
            "seconds": round(seconds, 1), "timesteps": summary.total_timesteps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a name for these runs (their directory)")
    parser.add_argument("--overrides", type=json.loads, default={}, help="dotted config keys as a JSON object")
    parser.add_argument("--markets", nargs="+", default=list(STUDY_KINDS), choices=STUDY_KINDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if not (OUT / "study.yaml").is_file():
        parser.error(f"{OUT / 'study.yaml'} not found: run bench/default_study.py first (it writes the config)")
    jobs = []
    for kind in args.markets:
        path = OUT / "data" / f"{kind}.csv"
        if not path.is_file():
            write_market(suite_market(kind, seed=STUDY_SEED), path)
        jobs += [(args.name, args.overrides, str(path), seed) for seed in args.seeds]
    rows = []
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        for row in pool.map(one_run, jobs):
            rows.append(row)
            print(f"{row['market']:>12} seed {row['seed']}: validation {row['validation_fraction']} | test "
                  f"{row['test_fraction']} of the oracle's Sharpe | {row['seconds']}s {row['timesteps']:,} steps",
                  flush=True)
    print(json.dumps({"name": args.name, "overrides": args.overrides, "runs": rows}))


if __name__ == "__main__":
    main()
