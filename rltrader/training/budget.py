"""How many timesteps each iteration trains (the adaptive-timesteps optimization).

A model that has already learned the market needs less new experience to refine it, so
iteration ``i`` trains ``total_timesteps * (1 - decay) ** i``, never less than
``min_timesteps``. ``learn()`` runs whole rollouts, so every budget is rounded up to a
multiple of ``n_steps * n_envs``; the rounded figure is what the reports count.
"""

from __future__ import annotations

import math

from rltrader.config import TrainingConfig


def rounded_to_rollouts(timesteps: int, rollout_size: int) -> int:
    """The timesteps ``learn(timesteps)`` actually runs: whole rollouts, at least one."""
    return max(1, math.ceil(timesteps / rollout_size)) * rollout_size


def iteration_budget(iteration: int, training: TrainingConfig, adaptive: bool) -> int:
    """Timesteps iteration ``iteration`` trains, rounded up to whole rollouts."""
    planned = training.total_timesteps
    if adaptive:
        decayed = round(training.total_timesteps * (1 - training.timestep_decay) ** iteration)
        planned = max(training.min_timesteps, decayed)
    return rounded_to_rollouts(planned, training.rollout_size)


def original_budget(training: TrainingConfig) -> int:
    """What the original method trains per iteration: the full budget every time."""
    return rounded_to_rollouts(training.total_timesteps, training.rollout_size)
