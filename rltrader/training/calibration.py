"""What the original method would cost here: stock sb3-contrib's training, timed once per machine and config.

The live "speedup so far" compares a run's wall time with what the original method (every
optimization off: fixed budget, no early stopping, stock sb3-contrib) would need. At the run's
own throughput that would leave out the fast engine, the biggest single saving; so the
original's model learns four rollouts here, under the performance mode in force, and each
collection and update is timed. The first update after a reset is far slower (stock
sb3-contrib loops over sequences that hold an episode start, one timestep at a time) and the
original pays it in every rollout that holds a reset: each iteration's first, and one per
``env.episode_length`` steps after (measured on the shipped sample: 7.5 s for the first, 7.1 s
for the ninth rollout, 0.4 s for the others). An iteration is its budget at the steady rate
plus that extra for each such rollout. Updates
are timed warm: the steady ones at the run's epochs (an update timed at one epoch and scaled
multiplied its fixed costs too), the slow one at one epoch and scaled (its per-timestep loop
costs the same each epoch). Resets after a drawdown and the original's validations are not
counted: against measured demo iterations the estimate came to 0.89-1.01 of them
(``bench/speedup_estimate.py``). Cached in
``<cache.dir>/calibration/<key>.json`` (or ``$RLTRADER_CALIBRATION_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import socket
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sb3_contrib
import stable_baselines3
import torch
from pydantic import ValidationError
from stable_baselines3.common.callbacks import BaseCallback

from rltrader.atomic import write_json
from rltrader.config import Config
from rltrader.env import MarketData
from rltrader.env.trading_env import EpisodeBounds
from rltrader.env.vec_env import VecTradingEnv
from rltrader.records import OriginalThroughput
from rltrader.runtime.hooks import UpdateHook
from rltrader.training.models import build_model
from rltrader.training.phases import hyperparameters_for

logger = logging.getLogger(__name__)

DIRECTORY_VARIABLE = "RLTRADER_CALIBRATION_DIR"
TIMED_ROLLOUTS = 4  # the first after a reset (slow), then the median of three steady ones
SLOW_EPOCHS = 1  # the slow update after a reset is warmed and timed at this many epochs, then scaled


def calibration_dir(config: Config) -> Path:
    return Path(os.environ.get(DIRECTORY_VARIABLE) or Path(config.cache.dir) / "calibration")


def machine_description() -> str:
    """Host, CPU model and cores: a calibration holds for this machine only."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{socket.gethostname()}, {cpu}, {os.cpu_count()} cores"


class _RolloutTimer(BaseCallback):
    """Marks rollout starts and ends and update ends. After the first rollout (a reset), one untimed update warms
    the slow path (cold: 1.5x) and the timed one runs ``SLOW_EPOCHS`` epochs: its per-timestep loop costs the
    same each epoch (2.07 s for one, 7.9-8.7 s for four on the demo config), so it is scaled; the steady updates
    run the model's own epochs, since scaling theirs would multiply their fixed costs too."""

    def __init__(self) -> None:
        super().__init__(verbose=0)
        self.marks: list[float] = []
        self.epochs = 0

    def _on_rollout_start(self) -> None:
        self.marks.append(time.perf_counter())  # also the end of the previous update
        if len(self.marks) == 4:  # the slow update is timed: back to the run's epochs
            self.model.n_epochs = self.epochs

    def _on_rollout_end(self) -> None:
        self.marks.append(time.perf_counter())
        if len(self.marks) == 2:
            self.epochs, self.model.n_epochs = self.model.n_epochs, SLOW_EPOCHS
            self.model.train()
            self.marks.append(time.perf_counter())

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.marks.append(time.perf_counter())


def episode_steps(bounds: EpisodeBounds) -> int | None:
    """Steps between an account's resets in training: the episode length, or the longest stretch where that
    is shorter; None where episodes run to the split's end from a random bar (lengths vary: not counted)."""
    if bounds.episode_length is None:
        return None
    return min(bounds.episode_length, max(last - first for first, last in bounds.segments or ((bounds.first,
                                                                                              bounds.last),)))


def _key(config: Config, model: Any, observation_shape: tuple[int, ...], machine: str) -> str:
    training = config.training
    identity: dict[str, Any] = {
        "machine": machine, "torch": torch.__version__, "sb3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__, "threads": torch.get_num_threads(),
        "algorithm": training.algorithm, "policy": training.policy.model_dump(mode="json"),
        "n_envs": training.n_envs, "n_steps": training.n_steps, "batch_size": model.batch_size,
        "n_epochs": model.n_epochs, "observation": list(observation_shape),
        "timed": "steady at the run's epochs",  # calibrations scaled wholly from one epoch (before 2026-12-07): again
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def original_throughput(config: Config, market: MarketData,
                        mode_hooks: Sequence[UpdateHook] = ()) -> OriginalThroughput:
    """Stock sb3-contrib's cost on ``market`` with ``config``'s original settings: cached, else measured;
    ``mode_hooks`` (performance mode) set batch, epochs and threads on the calibration model first."""
    training = config.training
    env = VecTradingEnv(market, "train", config.env, training.n_envs)
    model = build_model(env, training, hyperparameters_for(0, training, False), training.seed, fast_engine=False)
    for hook in mode_hooks:
        hook(model, 0)
    key = _key(config, model, env.observation_space.shape, machine := machine_description())
    path = calibration_dir(config) / f"{key}.json"
    resets = {"n_steps": training.n_steps, "episode_steps": episode_steps(env.bounds)}
    if path.is_file():
        try:
            return OriginalThroughput.model_validate_json(path.read_text(encoding="utf-8")).model_copy(update=resets)
        except (OSError, ValidationError):
            logger.warning("%s is unreadable; calibrating again", path)
    rollout = training.n_steps * training.n_envs
    engine = "stock sb3-contrib RecurrentPPO" if training.algorithm == "recurrent" else "stock stable-baselines3 PPO"
    logger.info("Timing %s for the speedup estimate (once per machine and config)", engine)
    timer = _RolloutTimer()
    model.learn(total_timesteps=TIMED_ROLLOUTS * rollout, callback=timer)
    start, collected, warmed, *later = timer.marks  # then a start and an end per rollout, and the last update's end
    # the warm-up is a second sample of the slow update (cold, yet within 10% of it): the faster of the two
    slow_update = min(warmed - collected, later[0] - warmed) * model.n_epochs / SLOW_EPOCHS
    first = collected - start + slow_update
    steady = statistics.median(later[i + 1] - later[i] + later[i + 2] - later[i + 1]
                               for i in range(0, len(later) - 1, 2))
    steady_update = statistics.median(later[i + 2] - later[i + 1] for i in range(0, len(later) - 1, 2))
    mode = next((applied for hook in mode_hooks if (applied := hook.applied_mode())), None)
    measured = OriginalThroughput(
        timesteps_per_second=round(rollout / steady, 1), first_update_extra_seconds=round(max(0.0, first - steady), 3),
        reset_update_extra_seconds=round(max(0.0, slow_update - steady_update), 3),
        engine=engine, timed_timesteps=rollout, batch_size=model.batch_size, n_epochs=model.n_epochs,
        timed_epochs=SLOW_EPOCHS, torch_threads=torch.get_num_threads(), mode=mode, machine=machine,
        calibrated_at=datetime.now(UTC).isoformat(timespec="seconds"), key=key, **resets)
    write_json(path, measured.to_json())
    logger.info("Original method here: %s timesteps/s, plus %.1f s for each rollout that holds a reset (%s)",
                f"{measured.timesteps_per_second:,.0f}", measured.first_update_extra_seconds, path)
    return measured


__all__ = ["DIRECTORY_VARIABLE", "calibration_dir", "episode_steps", "machine_description", "original_throughput"]
