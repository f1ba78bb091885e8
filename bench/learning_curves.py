"""Learning curves on known-answer markets: how much of a planted edge a configuration learns, and how fast.

For each market (every stationary kind of ``rltrader synth``, as
:func:`rltrader.data.synthetic.suite_market` sets it: 20,000 M15 bars, seed 0, written to
``bench/out/learning_curves/data``), each configuration and each seed, one training run
of the real pipeline (``Trainer``, every optimization as configured) is
recorded at every validation look: cumulative timesteps, wall seconds since the run
started, and the agent's Sharpe and edge captured (return / oracle's return) on
validation *and* test.

The test figures at every look are a diagnosis of learning on a synthetic market whose
answer is known; nothing selects on them (the trainer keeps its best model by validation
alone), and the final "test" figures are the kept model's single test look, as
``rltrader train`` reports it.

``default`` is configs/default.yaml as it is (RecurrentPPO since issue 47); ``feedforward_profile`` is
``--profile feedforward`` (the feed-forward settings the study of issue 37 chose, the default before
issue 47); ``before_study`` restores every default the
study of ``bench/default_study.py`` changed (issue 37) to its value before. The kinds in
``HELD_OUT_KINDS`` never reached that study: their figures are marked held out. The study
saw other bars (seed 100) of its own kinds, and only their validation splits.

Runs go ``--workers`` at a time, each in its own process on one core (quiet mode: one torch
thread), as two runs on a 2-core machine; ``seconds`` is each run's own wall time.

``plain_ppo`` is the yardstick of issue 19: stable-baselines3's ``PPO("MlpPolicy")``
with SB3's defaults on the same ``VecTradingEnv`` (8 accounts, the previous default window of
32 bars), trained for the same wall time as the ``default`` configuration's run on that
market and seed (it needs ``default`` in ``--configs``, listed before it), its final
model scored once on test.

Usage: .venv/bin/python bench/learning_curves.py [--configs default feedforward_profile before_study plain_ppo]
       [--seeds 42 1042 2042] [--markets momentum time_of_day ...] [--workers 2]
       [--set features.move_patterns=0 ...] [--market_set sequence_bars=5 seed=7 ...]
``--set`` overrides configs/default.yaml under every config (``--set training.policy.observation_skip=false``:
the recurrent policy before its heads read the observation); ``--market_set`` changes every market's generator
(``rltrader synth``'s options): a variant of a kind that no study and no default saw.
Writes bench/out/learning_curves/{curves.json, <market>.png}. Last line: one JSON object with
markets, configs, seeds, held_out_kinds, memory_kinds, edge_captured_test and seconds (per config, per
market, one value per seed), and sharpe_fraction_of_oracle_test the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.default_study import HELD_OUT_KINDS  # noqa: E402
from rltrader.config import Config, load_config  # noqa: E402
from rltrader.data.known_answer import MEMORY_KINDS, STATIONARY_KINDS  # noqa: E402
from rltrader.data.synthetic import (  # noqa: E402
    suite_market,
    write_market,
)
from rltrader.env import evaluation_config  # noqa: E402
from rltrader.env.trading_env import EpisodeBounds  # noqa: E402
from rltrader.evaluation.ledger import replay  # noqa: E402
from rltrader.evaluation.metrics import compute_metrics  # noqa: E402
from rltrader.evaluation.report import edge_captured, oracle_metrics, policy_actions  # noqa: E402
from rltrader.training.spec import RunSpec  # noqa: E402
from rltrader.training.trainer import Trainer  # noqa: E402

OUT = ROOT / "bench" / "out" / "learning_curves"
MARKETS = STATIONARY_KINDS
SPLITS = ("validation", "test")

PREVIOUS_DEFAULTS: dict[str, Any] = {
    "training.algorithm": "recurrent",
    "env.window_size": 32,
    "env.sizing": "units",
}
"""The shipped defaults before the learning issue (19), as overrides of today's configs/default.yaml."""

BEFORE_STUDY: dict[str, Any] = {
    "training.algorithm": "recurrent",
    "env.window_size": 1,
    "training.policy.lstm_hidden_size": 128,
    "training.n_envs": 8,
    "training.n_steps": 256,
    "training.batch_size": 512,
    "training.phases.0.learning_rate": 0.0003,
    "training.phases.0.n_epochs": 10,
    "training.phases.0.ent_coef": 0.02,
    "training.gamma": 0.99,
    "training.gae_lambda": 0.95,
    "env.reward_scale": 100.0,
    "training.early_stopping_patience": 3,
    "training.early_stopping_smoothing": 1.0,  # each raw look: the rule before issue 37
    "training.iterations": 8,
    "training.total_timesteps": 50000,
    "training.min_timesteps": 15000,
    "training.eval_freq": 10000,
    "training.checkpoint_freq": 10000,
    "features.calendar_harmonics": 1,
    "features.signed_volume": False,
    "env.risk_aversion": 0.0,
    "training.learning_rate": 0.0003,  # unread while progressive training is on; restored all the same
    "training.ent_coef": 0.01,
}
"""The defaults before the study of issue 37, as overrides of today's configs/default.yaml."""

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "before_study": BEFORE_STUDY,
    "previous": PREVIOUS_DEFAULTS,
    "recurrent": {"training.algorithm": "recurrent"},
    "feedforward": {"training.algorithm": "feedforward"},
    "recurrent_window32": {"training.algorithm": "recurrent", "env.window_size": 32},
    "feedforward_window32": {"training.algorithm": "feedforward", "env.window_size": 32},
    "units": {"env.sizing": "units"},  # the default before position sizing (issue 23): 1 unit, ~20% of equity here
}
"""Named configurations: dotted overrides of configs/default.yaml (``plain_ppo`` is not a config)."""


class CurveRecorder:
    """A validation hook of the real trainer: each validation look also scored on test, for the curve
    (never for selection: the trainer keeps its best model by validation alone). The hook's own time is
    kept apart (``look_seconds``): the curve's clock and the run's ``seconds`` leave it out, since a user's
    run does not score test at every look."""

    def __init__(self, market: Any, config: Config) -> None:
        self.market, self.config = market, config
        self.started = time.perf_counter()
        self.look_seconds = 0.0
        self.curve: list[dict[str, float | None]] = []
        self.oracle: dict[str, dict[str, Any]] = {}

    def __call__(self, look_number: int, best_score: float, model: Any, timesteps: int) -> None:
        entered = time.perf_counter()
        figures = look(model, self.market, self.config, self.oracle)
        self.curve.append({"timesteps": timesteps, "seconds": round(entered - self.started - self.look_seconds, 2),
                           **figures})
        self.look_seconds += time.perf_counter() - entered


def look(model: Any, market: Any, config: Config, oracle: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Sharpe and edge captured of ``model`` on validation and test: the agent's ledger alone (the oracle's
    figures scored once per split and cached in ``oracle``; no baselines, no null distribution)."""
    figures: dict[str, float | None] = {}
    for split in SPLITS:
        actions = policy_actions(model, market, split, config.env, "fast")
        first = EpisodeBounds.of(market, split, evaluation_config(config.env)).first
        if split not in oracle:  # not evaluate_actions: its null distribution's parallel kernel leaves a thread
            oracle[split] = oracle_metrics(market, split, config.env)  # pool that slowed the run 3x
        agent = compute_metrics(replay(market, first, actions, config.env.initial_balance), market, first)
        figures[f"{split}_sharpe"] = agent.get("sharpe")
        figures[f"{split}_edge"] = edge_captured(agent, oracle[split])
    return figures


PROFILE_CONFIGS = {"feedforward_profile": "feedforward"}
"""Configurations that are a profile of configs/default.yaml: ``--profile feedforward``, the feed-forward settings
the study of issue 37 chose (the default's algorithm is recurrent)."""


def train_config(name: str, base: Config, seed: int, data: Path) -> dict[str, Any]:
    base = base.with_profile(PROFILE_CONFIGS[name]) if name in PROFILE_CONFIGS else base
    config = base.with_overrides({**CONFIGS.get(name, {}), "training.seed": seed}, source=f"bench config {name}")
    run_dir = OUT / "runs" / data.stem / name / str(seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    recorder = CurveRecorder(None, config)
    # as `rltrader train` runs: with the performance-mode switch, in quiet mode (no settings file here), so
    # one torch thread a run and two runs side by side share the 2 cores without oversubscribing them
    spec = RunSpec(config=config, data_path=str(data), run_dir=str(run_dir), settings_file=str(OUT / "settings.json"))
    trainer = Trainer.from_spec(spec, validation_hooks=[recorder])
    trainer.open()
    recorder.market = trainer.market
    for iteration in range(trainer.state.next_iteration, config.training.iterations):
        trainer.train_iteration(iteration)
    summary = trainer.finish()
    return {"curve": recorder.curve, "seconds": round(summary.total_time_seconds - recorder.look_seconds, 1),
            "seconds_with_test_looks": round(summary.total_time_seconds, 1),
            "timesteps": summary.total_timesteps,
            **final_test(summary.test.agent.get("sharpe"), summary.test.agent.get("edge_captured")),
            "oracle_test_sharpe": summary.test.oracle["sharpe"]}


def final_test(sharpe: float | None, edge: float | None) -> dict[str, Any]:
    """A run's test figures for the tables: a model that never trades on test has no Sharpe (its account never
    moved) and captures nothing of the oracle's, so it counts as 0 of both; ``test_traded`` says which it was."""
    return {"test_sharpe": 0.0 if sharpe is None else sharpe, "test_edge": 0.0 if edge is None else edge,
            "test_traded": sharpe is not None}


def train_plain_ppo(base: Config, seed: int, data: Path, seconds: float) -> dict[str, Any]:
    """SB3's ``PPO("MlpPolicy")`` with its defaults for ``seconds`` of training, looked at every 16,384 steps."""
    import torch
    from stable_baselines3 import PPO

    from rltrader.env import MarketData
    from rltrader.env.vec_env import VecTradingEnv
    from rltrader.features.preparation import preprocess

    config = base.with_overrides({"env.window_size": 32}, source="bench plain_ppo")
    torch.set_num_threads(1)  # as a quiet-mode run: one core of two
    started = time.perf_counter()
    market = MarketData.from_prepared(preprocess(data, config), config, data)
    env = VecTradingEnv(market, "train", config.env, config.training.n_envs)
    torch.manual_seed(seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
    curve, oracle, training_seconds = [], {}, 0.0
    while training_seconds < seconds:
        chunk = time.perf_counter()
        model.learn(16_384, reset_num_timesteps=False)
        training_seconds += time.perf_counter() - chunk
        curve.append({"timesteps": int(model.num_timesteps), "seconds": round(time.perf_counter() - started, 2),
                      **look(model, market, config, oracle)})
    final = curve[-1]
    return {"curve": curve, "seconds": round(time.perf_counter() - started, 1), "timesteps": int(model.num_timesteps),
            **final_test(final["test_sharpe"], final["test_edge"]), "oracle_test_sharpe": oracle["test"]["sharpe"]}


def plot(market: str, results: dict[str, dict[int, dict[str, Any]]], target: Path) -> None:
    """Test and validation edge captured against wall time: one thin line per seed, the seeds' mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, runs) in enumerate(results.items()):
        colour = colours[index % len(colours)]
        for axis, split in zip(axes, SPLITS, strict=True):
            grid = np.linspace(0, max(run["seconds"] for run in runs.values()), 60)
            lines = []
            for run in runs.values():
                points = [(p["seconds"], p[f"{split}_edge"]) for p in run["curve"] if p[f"{split}_edge"] is not None]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8)
                lines.append(np.interp(grid, xs, ys, left=np.nan, right=ys[-1]))
            if lines:
                axis.plot(grid, np.nanmean(lines, axis=0), color=colour, linewidth=2.2,
                          label=f"{name} ({len(lines)} seeds)")
    for axis, split in zip(axes, SPLITS, strict=True):
        axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        axis.axhline(0.0, color="grey", linewidth=0.6)
        axis.set_xlabel("wall seconds since the run started (preprocessing included)")
        axis.set_title(f"{market}: {split} edge captured at each validation look")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("agent's return / oracle's return (1 = oracle)")
    axes[1].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


Job = tuple[str, str, int, str, float | None, str | None, dict[str, Any]]
"""``(market, config, seed, data file, plain_ppo seconds, profile, overrides applied to every config)``."""


def run_one(job: Job) -> tuple[str, str, int, dict[str, Any]]:
    """One run in a worker process."""
    kind, name, seed, data, seconds, profile, overrides = job
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message="Mean of empty slice")
    base = load_config().with_profile(profile).with_overrides(
        {**overrides, "cache.dir": str(OUT / "cache" / kind)}, source="bench")
    run = (train_plain_ppo(base, seed, Path(data), seconds) if name == "plain_ppo"
           else train_config(name, base, seed, Path(data)))
    return kind, name, seed, run


def run_all(jobs: list[Job], workers: int,
            results: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> None:
    """Every job, ``workers`` at a time in fresh (spawned) processes, each line printed as its run ends."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # a fresh process per run: a finished run's test report (its null distribution's parallel kernel) leaves a
    # thread pool behind that would slow the next run in the same process
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            kind, name, seed, run = future.result()
            results[kind].setdefault(name, {})[seed] = run
            print(f"{kind:>17} {name:>14} seed {seed:>5}: {run['seconds']:6.1f}s {run['timesteps']:>8,} steps | "
                  f"test Sharpe {run['test_sharpe']:6.2f} of the oracle's {run['oracle_test_sharpe']:5.2f} | "
                  f"test edge captured {run['test_edge']:.3f} | {len(run['curve'])} looks", flush=True)


def parse_overrides(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as dotted overrides, each value read as YAML (``8``, ``null``, ``[1, 4]``)."""
    import yaml

    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            parser.error(f"--set {pair!r}: write KEY=VALUE, e.g. features.recent_bars=8")
        overrides[key] = yaml.safe_load(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["default", "feedforward_profile"],
                        choices=[*CONFIGS, *PROFILE_CONFIGS, "plain_ppo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1042, 2042])
    parser.add_argument("--markets", nargs="+", default=list(MARKETS), choices=MARKETS)
    parser.add_argument("--profile", default=None, help="profile of configs/default.yaml applied to every config")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, one process (one core) each")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="dotted overrides of configs/default.yaml applied to every config (values read as YAML)")
    parser.add_argument("--market_set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="generator settings of every market (rltrader synth's options, e.g. sequence_bars=4 "
                             "seed=7): variants of a kind no study saw")
    args = parser.parse_args()
    overrides = parse_overrides(parser, args.overrides)
    market_settings = parse_overrides(parser, args.market_set)
    if "plain_ppo" in args.configs and "default" not in args.configs:
        parser.error("plain_ppo trains for the default config's wall time: list default too")
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message="Mean of empty slice")  # a plot's early grid points

    for stale in ("runs", "warmup"):
        shutil.rmtree(OUT / stale, ignore_errors=True)
    base = load_config().with_profile(args.profile).with_overrides(
        {**overrides, "cache.dir": str(OUT / "cache")}, source="bench")
    data = {kind: OUT / "data" / f"{kind}.csv" for kind in args.markets}
    for kind, path in data.items():
        write_market(suite_market(kind, **market_settings), path)
    # numba compiles and caches on first use: one tiny untimed run of each algorithm first
    for algorithm in ("recurrent", "feedforward"):
        Trainer(base.with_profile("smoke").with_overrides({"training.algorithm": algorithm}, source="bench"),
                data[args.markets[0]], OUT / "warmup" / algorithm).run()

    results: dict[str, dict[str, dict[int, dict[str, Any]]]] = {kind: {} for kind in args.markets}
    started = time.perf_counter()
    trained = [name for name in args.configs if name != "plain_ppo"]
    run_all([(kind, name, seed, str(data[kind]), None, args.profile, overrides)
             for kind in args.markets for name in trained for seed in args.seeds], args.workers, results)
    if "plain_ppo" in args.configs:
        run_all([(kind, "plain_ppo", seed, str(data[kind]), results[kind]["default"][seed]["seconds"], args.profile,
                  overrides)
                 for kind in args.markets for seed in args.seeds], args.workers, results)
    results = {kind: {name: dict(sorted(results[kind][name].items())) for name in args.configs}
               for kind in args.markets}
    for kind in args.markets:
        plot(kind, results[kind], OUT / f"{kind}.png")
    (OUT / "curves.json").write_text(json.dumps(results, indent=1), encoding="utf-8")

    def per_seed(kind: str, name: str, key: str) -> list[float]:
        return [round(results[kind][name][seed][key], 4) for seed in args.seeds]

    def sharpe_fraction(kind: str, name: str) -> list[float]:
        return [round(run["test_sharpe"] / run["oracle_test_sharpe"], 4) for run in results[kind][name].values()]

    held_out = [kind for kind in args.markets if kind in HELD_OUT_KINDS]
    print(f"\n{len(args.markets)} markets x {len(args.configs)} configs x {len(args.seeds)} seeds "
          f"in {time.perf_counter() - started:.0f}s, {args.workers} at once; curves in {OUT}")
    print(f"{'market':>19} {'config':>14} {'test Sharpe / oracle':>22} {'test edge captured':>20} {'seconds':>16}")
    for kind in args.markets:
        for name in args.configs:
            fractions, edges = sharpe_fraction(kind, name), per_seed(kind, name, "test_edge")
            seconds = per_seed(kind, name, "seconds")
            label = f"{kind}{' *' if kind in held_out else ''}"
            print(f"{label:>19} {name:>14} {statistics.mean(fractions):>10.3f} (sd {statistics.pstdev(fractions):.3f})"
                  f" {statistics.mean(edges):>10.3f} (sd {statistics.pstdev(edges):.3f})"
                  f" {statistics.mean(seconds):>9.1f} (max {max(seconds):.0f})")
    print("* held out of the study that chose the defaults; memory kinds (no single bar shows their edge): "
          f"{', '.join(kind for kind in args.markets if kind in MEMORY_KINDS) or 'none run'}")
    print(json.dumps({
        "markets": list(args.markets),
        "configs": list(args.configs),
        "seeds": args.seeds,
        "held_out_kinds": held_out,
        "memory_kinds": [kind for kind in args.markets if kind in MEMORY_KINDS],
        "overrides": overrides,
        "market_settings": market_settings,
        "edge_captured_test": {name: {kind: per_seed(kind, name, "test_edge") for kind in args.markets}
                               for name in args.configs},
        "sharpe_fraction_of_oracle_test": {name: {kind: sharpe_fraction(kind, name) for kind in args.markets}
                                           for name in args.configs},
        "seconds": {name: {kind: per_seed(kind, name, "seconds") for kind in args.markets} for name in args.configs},
    }))


if __name__ == "__main__":
    main()
