"""The study that chose rltrader's defaults: ``rltrader tune`` on several known-answer markets at once.

Writes one known-answer market per *study* kind (``rltrader synth`` settings of
:func:`rltrader.data.synthetic.suite_market`, seed 100: other bars than the learning-curves
bench's seed 0), and a config: configs/default.yaml with the study's search space, no
profile (the budgets are searched), and the objective of :mod:`rltrader.tuning.trial`: the
mean over the markets of the best validation Sharpe as a fraction of the oracle's, less 0.5
per multiple of 60 s a run overruns. Then runs the real command,
``rltrader tune --data_path A --more_data B C ...`` (Prefect flow, trials on a process pool),
and prints the best trial.

The best trial of many is the luckiest of many single-seed looks, so the study's top
``--confirm_top`` trials are trained again on the same markets with ``--confirm_seeds`` new
training seeds, scored the same way (validation only), and the one with the best mean over
those fresh runs is chosen: that is what configs/default.yaml takes.

The kinds in ``HELD_OUT_KINDS`` never reach the study: ``bench/learning_curves.py`` scores
the chosen settings on them (and on the study kinds' seed-0 markets), on test splits, 3 seeds.

Usage: .venv/bin/python bench/default_study.py [--trials 120] [--workers 2] [--name defaults]
       [--confirm_top 5] [--confirm_seeds 7 8] [--confirm_only] [--kinds momentum time_of_day volume ...]
       [--pin training.algorithm=recurrent ...]
Writes bench/out/study/{data, study.yaml, results/tune-NAME/, confirm-NAME.json}. Last line: JSON with
study_kinds, held_out_kinds, trials, complete, pruned, best_trial, best_value, confirmed (per
trial: mean score, per-market validation fractions and seconds), chosen_trial, chosen_params, minutes.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from rltrader.data.known_answer import STATIONARY_KINDS  # noqa: E402
from rltrader.data.synthetic import suite_market, write_market  # noqa: E402

OUT = ROOT / "bench" / "out" / "study"
STUDY_KINDS = ("momentum", "time_of_day", "volume")
HELD_OUT_KINDS = ("mean_reversion", "volatility_regime", "day_of_week", "session_trend")
STUDY_SEED = 100

SPACE: dict[str, dict[str, object]] = {
    "training.algorithm": {"choices": ["recurrent", "feedforward"]},
    "env.window_size": {"choices": [1, 8, 32]},
    "training.policy.lstm_hidden_size": {"choices": [32, 64, 128]},
    "training.n_envs": {"choices": [8, 16]},
    "training.n_steps": {"choices": [128, 256]},
    "training.batch_size": {"choices": [256, 512]},
    "training.phases.0.learning_rate": {"low": 1e-4, "high": 3e-3, "log": True},
    "training.phases.0.n_epochs": {"low": 3, "high": 10},
    "training.phases.0.ent_coef": {"low": 0.001, "high": 0.05, "log": True},
    "training.gamma": {"low": 0.9, "high": 0.999},
    "training.gae_lambda": {"low": 0.8, "high": 0.99},
    "env.reward_scale": {"choices": [30.0, 100.0, 300.0]},
    "env.risk_aversion": {"low": 0.01, "high": 1.0, "log": True},
    "training.early_stopping_patience": {"low": 2, "high": 5},
    "training.early_stopping_smoothing": {"low": 0.3, "high": 1.0},
    "training.iterations": {"choices": [2, 4, 6]},
    "training.total_timesteps": {"choices": [16384, 32768, 65536]},
    "training.eval_freq": {"choices": [4096, 8192]},
}
"""What moves learning and speed: algorithm, network, rollout shape, the first phase's learning rate, epochs
and entropy (later phases scale down from the defaults), discounting, reward scale, early stopping, budgets."""


OBSERVATION = {"calendar_harmonics": 3, "signed_volume": True}
"""What the first pass of the study (120 trials, the same space without risk_aversion) pointed to: its best
settings learned under half of the time-of-day and volume edges, and runs of its best trial with these
features learned most of them (bench/README.md): the second pass searches with them on."""


def study_config(target: Path, pinned: dict[str, Any]) -> Path:
    """configs/default.yaml with the study's tune section and a budget floor every searched budget allows;
    ``pinned`` keys are set and left out of the space."""
    from rltrader.config import load_config

    base = load_config().with_overrides({"training.min_timesteps": 8192, **{f"features.{key}": value for key, value
                                                                           in OBSERVATION.items()}, **pinned},
                                        source="the study")
    raw = base.model_dump(mode="json")
    space = {key: value for key, value in SPACE.items() if key not in pinned}
    raw["tune"].update({"profile": None, "space": space, "time_target_seconds": 60.0, "time_penalty": 0.5,
                        "pruner": {"n_startup_trials": 5, "n_warmup_steps": 2}})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# written by bench/default_study.py\n" + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return target


def confirm_run(job: tuple[int, dict[str, Any], str, int]) -> tuple[int, str, int, dict[str, float | None]]:
    """One fresh run of a trial's settings on one study market: its score as the study scores it (validation)."""
    from rltrader.config import load_config
    from rltrader.training.spec import RunSpec
    from rltrader.training.trainer import Trainer
    from rltrader.tuning.trial import file_score, oracle_validation_sharpe

    number, params, data, seed = job
    base = load_config(OUT / "study.yaml")
    config = base.with_overrides({**params, "training.seed": seed, "cache.dir": str(OUT / "cache")},
                                 source=f"trial {number}")
    run_dir = OUT / "confirm" / f"{number:04d}" / Path(data).stem / str(seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    trainer = Trainer.from_spec(RunSpec(config=config, data_path=data, run_dir=str(run_dir)))
    trainer.train(log_resume=False)
    seconds = time.perf_counter() - started
    oracle = oracle_validation_sharpe(trainer)
    best = trainer.state.best.score if trainer.state.best else 0.0
    score = file_score(best, oracle, seconds, base.tune.time_target_seconds, base.tune.time_penalty)
    return number, Path(data).stem, seed, {"fraction": None if oracle is None else round(best / oracle, 4),
                                           "seconds": round(seconds, 1), "score": round(score, 4)}


def confirm(trials: list[dict[str, Any]], files: list[Path], seeds: list[int], workers: int) -> dict[int, Any]:
    """Each trial's settings trained again on every market with each of ``seeds`` (fresh training seeds)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(row["trial"], dict(row["params"]), str(path), seed)
            for row in trials for path in files for seed in seeds]
    results: dict[int, dict[str, Any]] = {row["trial"]: {"runs": []} for row in trials}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for number, market, seed, figures in pool.map(confirm_run, jobs):
            results[number]["runs"].append({"market": market, "seed": seed, **figures})
            print(f"  confirm trial {number:>3} {market:>12} seed {seed}: validation fraction {figures['fraction']}"
                  f" in {figures['seconds']}s", flush=True)
    for entry in results.values():
        runs = entry["runs"]
        entry["mean_score"] = round(statistics.mean(run["score"] for run in runs), 4)
        entry["fraction_by_market"] = {market: round(statistics.mean(
            run["fraction"] for run in runs if run["market"] == market), 3) for market in {r["market"] for r in runs}}
        entry["mean_seconds"] = round(statistics.mean(run["seconds"] for run in runs), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="defaults")
    parser.add_argument("--confirm_top", type=int, default=5)
    parser.add_argument("--confirm_seeds", type=int, nargs="+", default=[7, 8])
    parser.add_argument("--confirm_only", action="store_true", help="skip the search: confirm the study as it is")
    parser.add_argument("--kinds", nargs="+", default=list(STUDY_KINDS), choices=STATIONARY_KINDS,
                        help="the study's markets (default: momentum time_of_day volume); e.g. add delayed_volume "
                             "for a study that also asks for memory")
    parser.add_argument("--pin", nargs="*", default=[], metavar="KEY=VALUE",
                        help="keys of the space held at one value (YAML), e.g. training.algorithm=recurrent")
    args = parser.parse_args()
    pinned = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.pin)}
    unknown = sorted(set(pinned) - set(SPACE))
    if unknown:
        parser.error(f"--pin {unknown[0]}: not a key of the study's space")
    files = []
    for kind in args.kinds:
        path = OUT / "data" / f"{kind}.csv"
        if not path.is_file():
            write_market(suite_market(kind, seed=STUDY_SEED), path)
        files.append(path)
    config = study_config(OUT / "study.yaml", pinned)  # the confirm runs read it too
    started = time.perf_counter()
    more = ["--more_data", *map(str, files[1:])] if len(files) > 1 else []  # one kind: no more files
    command = [sys.executable, "-m", "rltrader", "tune", "--data_path", str(files[0]), *more, "--config", str(config),
               "--name", args.name, "--trials", str(args.trials),
               "--workers", str(args.workers), "--results_dir", str(OUT / "results"),
               "--cache_dir", str(OUT / "cache")]
    if not args.confirm_only:
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    storage = f"sqlite:///{OUT / 'results' / f'tune-{args.name}' / 'study.db'}"
    study = optuna.load_study(study_name=args.name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    complete = sorted((trial for trial in trials if trial.state == TrialState.COMPLETE), key=lambda trial: -trial.value)
    pruned = sum(trial.state == TrialState.PRUNED for trial in trials)
    print(f"\n{len(trials)} trials ({len(complete)} complete, {pruned} pruned); the best {args.confirm_top}:")
    top = [{"trial": trial.number, "value": round(trial.value, 4), "params": trial.params,
            "files": trial.user_attrs.get("files", [])} for trial in complete[:args.confirm_top]]
    for row in top:
        scores = {part["data"]: round(part["score"], 3) for part in row["files"]}
        print(f"  trial {row['trial']:>3}: {row['value']:.3f}  {scores}")
    print(f"Confirming them with training seeds {args.confirm_seeds} on the same markets (validation only):")
    confirmed = confirm(top, files, args.confirm_seeds, args.workers)
    chosen = max(confirmed, key=lambda number: confirmed[number]["mean_score"])
    for number, entry in confirmed.items():
        print(f"  trial {number:>3}: mean score {entry['mean_score']:.3f} (study: "
              f"{next(row['value'] for row in top if row['trial'] == number):.3f}) "
              f"{entry['fraction_by_market']} {entry['mean_seconds']}s per run"
              f"{'  <- chosen' if number == chosen else ''}")
    chosen_params = next(row["params"] for row in top if row["trial"] == chosen)
    (OUT / f"confirm-{args.name}.json").write_text(json.dumps({"top": top, "confirmed": confirmed, "chosen": chosen},
                                                 indent=1, default=str), encoding="utf-8")
    print(json.dumps({
        "study_kinds": list(args.kinds), "held_out_kinds": [kind for kind in HELD_OUT_KINDS if kind not in args.kinds],
        "trials": len(trials),
        "complete": len(complete), "pruned": pruned,
        "best_trial": complete[0].number if complete else None,
        "best_value": round(complete[0].value, 4) if complete else None,
        "confirmed": {number: {key: entry[key] for key in ("mean_score", "fraction_by_market", "mean_seconds")}
                      for number, entry in confirmed.items()},
        "chosen_trial": chosen, "chosen_params": chosen_params,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }))


if __name__ == "__main__":
    main()
