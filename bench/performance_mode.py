"""Quiet against performance mode: training speed, and what is left for the user's own work.

Every measurement runs in fresh processes (a lowered priority cannot be raised back, so
a process that ran quiet mode cannot measure performance mode). The training process is
the optimized trainer's engine (``FusedRecurrentPPO``, default config: 8 accounts,
2,048-timestep rollouts, batch 512, 10 epochs) on the shipped M15 bars, with the
``ModeSwitcher`` hook reading a settings file that says quiet or performance; it trains
for a fixed time and reports timesteps/s. The foreground workload is a fixed CPU-bound
numpy loop (sorting 200,000 floats, one thread) in a separate normal-priority process;
its figure is sorts per second.

Runs: training alone in quiet, then in performance; the foreground alone; then the
foreground beside quiet training and beside performance training (started after the
training has warmed up, stopped before it ends).

Targets (issue): foreground beside quiet >= 70% of solo; performance trains faster than quiet.
Usage: .venv/bin/python bench/performance_mode.py [--train-seconds 40] [--foreground-seconds 20]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
CACHE = ROOT / "bench" / "out" / "performance_mode" / "cache"
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def foreground(seconds: float) -> None:
    """The user's work: sort 200,000 floats over and over; prints sorts per second."""
    import numpy as np

    values = np.random.default_rng(0).random(200_000)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        np.sort(values)
        done += 1
    print(json.dumps({"units_per_s": done / (time.perf_counter() - started)}))


def train(mode: str, seconds: float) -> None:
    """Train the engine under ``mode`` for ``seconds``; prints timesteps per second after the first update."""
    from stable_baselines3.common.callbacks import BaseCallback

    from rltrader.config import load_config
    from rltrader.env import MarketData
    from rltrader.env.vec_env import VecTradingEnv
    from rltrader.features.preparation import preprocess
    from rltrader.runtime.performance_mode import ModeSwitcher, write_mode
    from rltrader.training.models import build_model
    from rltrader.training.phases import hyperparameters_for

    config = load_config().with_overrides({"cache.dir": str(CACHE)}, "bench")
    market = MarketData.from_prepared(preprocess(SAMPLE, config), config)
    training = config.training
    model = build_model(VecTradingEnv(market, "train", config.env, training.n_envs), training,
                        hyperparameters_for(0, training, False), training.seed, fast_engine=True)
    settings = Path(tempfile.mkdtemp()) / "settings.json"
    write_mode(settings, mode)
    switcher = ModeSwitcher(config.performance_mode, settings_file=settings)
    marks: list[tuple[int, float]] = []

    class TimeLimit(BaseCallback):
        def _on_rollout_end(self) -> None:
            switcher(self.model, self.model.num_timesteps)

        def _on_rollout_start(self) -> None:
            marks.append((self.model.num_timesteps, time.perf_counter()))

        def _on_step(self) -> bool:
            return not marks or time.perf_counter() - marks[0][1] < seconds

    model.learn(10**9, callback=TimeLimit())
    (first, started), (last, ended) = marks[min(1, len(marks) - 1)], marks[-1]  # from the first update's end
    fps = (last - first) / (ended - started) if last > first else 0.0
    print(json.dumps({"fps": fps, "batch_size": model.batch_size,
                      "n_epochs": model.n_epochs, "threads": switcher.applied.torch_threads}))


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The bench itself in a subprocess. Its stderr goes to an unnamed temporary file, not a pipe (a pipe nobody
    reads while a trainer runs in the background could fill and stall it), and is shown if it fails."""
    errors = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors,
                               text=True, env={**os.environ, **(env or {})})
    process.errors = errors  # type: ignore[attr-defined]
    return process


def _result(process: subprocess.Popen) -> dict:
    """The subprocess's last stdout line as JSON; a failure exits with the end of its stderr (its reason)."""
    out, _ = process.communicate()
    errors = process.errors  # type: ignore[attr-defined]
    errors.seek(0)
    tail = "\n".join(errors.read().strip().splitlines()[-15:])
    errors.close()
    if process.returncode:
        raise SystemExit(f"bench subprocess {' '.join(process.args[2:])} failed with exit code "
                         f"{process.returncode}:\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seconds", type=float, default=40.0)
    parser.add_argument("--foreground-seconds", type=float, default=20.0)
    parser.add_argument("--train", choices=["quiet", "performance"], help=argparse.SUPPRESS)
    parser.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train:
        return train(args.train, args.train_seconds)
    if args.foreground:
        return foreground(args.foreground_seconds)

    _result(_python("--train", "quiet", "--train-seconds", "1"))  # fills the feature cache, warms the disk
    alone = {mode: _result(_python("--train", mode, "--train-seconds", str(args.train_seconds)))
             for mode in ("quiet", "performance")}
    for mode, row in alone.items():
        print(f"training alone, {mode:11s}: {row['fps']:7.1f} timesteps/s (batch {row['batch_size']}, "
              f"epochs {row['n_epochs']}, threads {row['threads']})", flush=True)
    fg_args = ("--foreground", "--foreground-seconds", str(args.foreground_seconds))
    solo = _result(_python(*fg_args, env=SINGLE_THREAD))["units_per_s"]
    print(f"foreground alone         : {solo:7.1f} sorts/s", flush=True)
    beside = {}
    for mode in ("quiet", "performance"):
        trainer = _python("--train", mode, "--train-seconds", str(args.foreground_seconds + 25))
        time.sleep(15)  # data, model, first update
        beside[mode] = _result(_python(*fg_args, env=SINGLE_THREAD))["units_per_s"]
        trained = _result(trainer)
        print(f"foreground beside {mode:11s}: {beside[mode]:7.1f} sorts/s ({beside[mode] / solo:.0%} of solo; "
              f"training meanwhile {trained['fps']:.1f} timesteps/s)", flush=True)
    print(json.dumps({
        "quiet_fps": round(alone["quiet"]["fps"], 1),
        "performance_fps": round(alone["performance"]["fps"], 1),
        "foreground_solo": round(solo, 1),
        "foreground_with_quiet": round(beside["quiet"], 1),
        "foreground_with_performance": round(beside["performance"], 1),
        "foreground_kept_with_quiet": round(beside["quiet"] / solo, 3),
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
