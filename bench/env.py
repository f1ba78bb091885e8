"""Random-action stepping speed: TradingEnv, VecTradingEnv (N=16) and gym-anytrading's forex-v0.

All three run in this one process, on the same real bars (the shipped XAUUSD H1 file,
2016-2026) with a 32-bar window, the same pre-drawn random actions, resetting when an
episode ends. Three rounds interleave the kinds so machine noise hits them alike, and
the best round of each is reported. Both single environments are stepped as raw classes (no ``gym.make``
wrappers) so neither pays wrapper overhead the other does not. gym-anytrading is not a
project dependency: on first use it is installed with ``pip --target bench/.deps
--no-deps`` (its own dependencies, gymnasium, numpy, pandas and matplotlib, are the
project's).

Targets (issue): single >= gym-anytrading, vectorized N=16 >= 10x gym-anytrading.
Usage: .venv/bin/python bench/env.py [--steps 200000] [--rounds 3]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "bench" / ".deps"
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
WINDOW = 32


def import_anytrading():
    """gym-anytrading from ``bench/.deps``, installed there on first use."""
    sys.path.insert(0, str(DEPS))
    try:
        from gym_anytrading.envs import ForexEnv
    except ImportError:
        print("installing gym-anytrading into bench/.deps (not a project dependency) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(DEPS),
                        "gym-anytrading==2.0.0"], check=True)
        sys.path_importer_cache.pop(str(DEPS), None)
        importlib.invalidate_caches()
        from gym_anytrading.envs import ForexEnv
    return ForexEnv


def steps_per_second(env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    step, reset = env.step, env.reset
    started = time.perf_counter()
    for action in actions.tolist():
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
    return len(actions) / (time.perf_counter() - started)


def vec_steps_per_second(env, actions: np.ndarray) -> float:
    env.seed(0)
    env.reset()
    step = env.step
    started = time.perf_counter()
    for row in actions:
        step(row)
    return actions.size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="random steps per environment kind and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is reported")
    args = parser.parse_args()

    from rltrader.config import load_config
    from rltrader.env import MarketData, TradingEnv, VecTradingEnv
    from rltrader.features.preparation import preprocess

    config = load_config().with_overrides({"env.window_size": WINDOW})
    prepared = preprocess(H1, config)
    market = MarketData.from_prepared(prepared, config)
    frame = prepared.load(["open", "high", "low", "close"]).rename(columns=str.capitalize)
    forex_env_class = import_anytrading()
    anytrading = forex_env_class(df=frame, window_size=WINDOW, frame_bound=(WINDOW, len(frame)))
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, args.steps)
    vec_actions = rng.integers(0, 3, (args.steps // 16, 16))

    runs = {
        "anytrading_steps_per_s": lambda n: steps_per_second(anytrading, actions[:n] % 2),
        "single_steps_per_s": lambda n: steps_per_second(TradingEnv(market, "train", config.env), actions[:n]),
        "vec16_steps_per_s": lambda n: vec_steps_per_second(
            VecTradingEnv(market, "train", config.env, num_envs=16), vec_actions[: max(1, n // 16)]),
    }
    # Rounds interleave the three kinds so machine noise hits them alike; best round kept.
    figures = {name: 0.0 for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            run(5_000)  # warm-up
            figures[name] = max(figures[name], round(run(args.steps), 0))
    scaling = {}
    for n_envs in (64, 256):
        batch = rng.integers(0, 3, (args.steps // n_envs, n_envs))
        scaling[n_envs] = vec_steps_per_second(VecTradingEnv(market, "train", config.env, num_envs=n_envs), batch)

    base = figures["anytrading_steps_per_s"]
    print(f"data: {H1.name}, {len(frame):,} bars, window {WINDOW}, {market.n_features} features "
          f"(observation {WINDOW * market.n_features + 2} floats; forex-v0's is {WINDOW} x 2)")
    print(f"{'environment':32s} {'steps/s':>12s} {'x anytrading':>13s}")
    print(f"{'gym-anytrading forex-v0':32s} {base:12,.0f} {1:13.2f}")
    print(f"{'TradingEnv':32s} {figures['single_steps_per_s']:12,.0f} {figures['single_steps_per_s'] / base:13.2f}")
    print(f"{'VecTradingEnv N=16 (total)':32s} {figures['vec16_steps_per_s']:12,.0f} "
          f"{figures['vec16_steps_per_s'] / base:13.2f}")
    for n_envs, value in scaling.items():
        print(f"{f'VecTradingEnv N={n_envs} (total)':32s} {value:12,.0f} {value / base:13.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
