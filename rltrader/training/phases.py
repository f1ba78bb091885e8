"""Progressive training: hyperparameters that change by phase over the iterations.

Early iterations explore (higher entropy bonus and learning rate), later ones refine and
fine-tune (smaller steps, tighter clipping, fewer epochs). SB3 reads the learning rate and
clip range through *schedules* at every update, so changing ``model.learning_rate`` on a
loaded model does nothing: :func:`apply_hyperparameters` replaces the schedules
themselves (``lr_schedule`` drives the optimizer's learning rate in ``train()``).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.utils import ConstantSchedule

from rltrader.config import PhaseConfig, TrainingConfig
from rltrader.records import Hyperparameters

PHASE_KEYS = ("learning_rate", "n_epochs", "ent_coef", "clip_range")
"""Hyperparameters a progressive-training phase may set, replacing ``training.<key>``."""


def unused_settings(training: TrainingConfig, progressive: bool) -> list[str]:
    """``training.<key>`` values that were changed from their defaults yet are never read: every iteration's
    phase sets that key while progressive training is on. Said once when a run starts, so an edit that
    changes nothing is not mistaken for one that made no difference. A value equal to the first phase's
    is not said: a profile sets both so that ``--no-progressive_training`` trains with its own values
    (``--profile feedforward`` does)."""
    if not progressive or not training.phases:
        return []
    fields = TrainingConfig.model_fields
    return [f"training.{key}={getattr(training, key)} (every phase sets {key}: edit training.phases.N.{key} or "
            "pass --no-progressive_training)"
            for key in PHASE_KEYS
            if getattr(training, key) not in (fields[key].default, getattr(training.phases[0], key))
            and all(getattr(phase, key) is not None for phase in training.phases)]


def phase_for(iteration: int, iterations: int, phases: list[PhaseConfig]) -> PhaseConfig | None:
    """The last phase whose ``start`` fraction has been reached by ``iteration``."""
    progress = iteration / iterations
    current = None
    for phase in phases:
        if phase.start <= progress + 1e-9:
            current = phase
    return current


def hyperparameters_for(iteration: int, training: TrainingConfig, progressive: bool) -> Hyperparameters:
    """Base hyperparameters, overridden by the iteration's phase when training is progressive."""
    phase = phase_for(iteration, training.iterations, training.phases) if progressive else None

    def pick(name: str) -> Any:
        value = getattr(phase, name) if phase is not None else None
        return getattr(training, name) if value is None else value

    return Hyperparameters(
        phase=phase.name if phase is not None else "base",
        learning_rate=float(pick("learning_rate")),
        n_epochs=int(pick("n_epochs")),
        ent_coef=float(pick("ent_coef")),
        clip_range=float(pick("clip_range")),
    )


def apply_hyperparameters(model: Any, hyper: Hyperparameters) -> None:
    """Make ``hyper`` the model's hyperparameters from its next update on."""
    model.learning_rate = hyper.learning_rate
    model.lr_schedule = ConstantSchedule(hyper.learning_rate)
    for group in model.policy.optimizer.param_groups:
        group["lr"] = hyper.learning_rate
    model.n_epochs = hyper.n_epochs
    model.ent_coef = hyper.ent_coef
    model.clip_range = ConstantSchedule(hyper.clip_range)


def reset_for_new_window(model: Any, ent_coef: float, fresh_optimizer: bool) -> None:
    """A warm model made ready for a new window: more exploration, and (before its first update) a new optimizer.

    Adam's moment estimates remember the gradients of the bars the model last trained on; carried
    into a new window they push the first updates the old way. ``fresh_optimizer`` is False on a
    resume from a checkpoint, whose optimizer already started over on this window.

    :param model: the loaded model, with the phase's hyperparameters applied
    :param ent_coef: the entropy coefficient to use at least
    :param fresh_optimizer: replace the optimizer by a fresh one of the same class and settings
    """
    model.ent_coef = max(float(model.ent_coef), ent_coef)
    if fresh_optimizer:
        policy = model.policy
        learning_rate = policy.optimizer.param_groups[0]["lr"]
        policy.optimizer = policy.optimizer_class(policy.parameters(), lr=learning_rate, **policy.optimizer_kwargs)
