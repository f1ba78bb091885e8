"""Building a fresh model and loading a saved one for further training.

Two algorithms share the loop (``training.algorithm``): ``recurrent`` is sb3-contrib's
``RecurrentPPO`` with an ``MlpLstmPolicy`` (on the fast engine, :mod:`rltrader.engine`, or
stock; by default its heads also read the observation, ``training.policy.observation_skip``),
``feedforward`` is stable-baselines3's ``PPO`` with an ``MlpPolicy`` reading the observation window.
Both take the same hyperparameters, callbacks and schedules, so every optimization applies to either.

Loading is where SB3's defaults bite this loop: ``load`` restores the saved seed (every
iteration would explore identically) and the saved schedules. The seed is therefore
passed explicitly, and the trainer applies the phase's hyperparameters after loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rltrader.config import TrainingConfig
from rltrader.engine import FusedLstmPolicy
from rltrader.engine.model_files import DEVICE, algorithm_class, saved_algorithm
from rltrader.engine.policies import ObservationSkipPolicy
from rltrader.training.phases import Hyperparameters

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


def policy_kwargs(training: TrainingConfig) -> dict[str, Any]:
    """The policy's network as SB3 takes it; the LSTM keys only for the recurrent policy."""
    policy = training.policy
    kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(policy.net_arch_pi), "vf": list(policy.net_arch_vf)},
        "activation_fn": ACTIVATIONS[policy.activation],
    }
    if training.algorithm == "recurrent":
        kwargs.update(lstm_hidden_size=policy.lstm_hidden_size, n_lstm_layers=policy.n_lstm_layers,
                      enable_critic_lstm=policy.enable_critic_lstm)
        if policy.observation_skip:  # only then: stock "MlpLstmPolicy" takes no such key
            kwargs["observation_skip"] = True
    return kwargs


def policy_class(training: TrainingConfig, fast_engine: bool) -> Any:
    """The policy SB3 builds: ``MlpPolicy``; ``MlpLstmPolicy`` on the stock loop (its skip-capable
    subclass when the heads read the observation); the engine's policy on the fast engine."""
    if training.algorithm != "recurrent":
        return "MlpPolicy"
    if fast_engine:
        return FusedLstmPolicy
    return ObservationSkipPolicy if training.policy.observation_skip else "MlpLstmPolicy"


def build_model(env: VecEnv, training: TrainingConfig, hyper: Hyperparameters, seed: int,
                fast_engine: bool = False) -> BaseAlgorithm:
    """A fresh model with the run's network sizes and the iteration's hyperparameters."""
    return algorithm_class(training.algorithm, fast_engine)(
        policy_class(training, fast_engine), env,
        learning_rate=hyper.learning_rate,
        n_steps=training.n_steps,
        batch_size=training.batch_size,
        n_epochs=hyper.n_epochs,
        gamma=training.gamma,
        gae_lambda=training.gae_lambda,
        clip_range=hyper.clip_range,
        ent_coef=hyper.ent_coef,
        vf_coef=training.vf_coef,
        max_grad_norm=training.max_grad_norm,
        policy_kwargs=policy_kwargs(training),
        seed=seed,
        device=DEVICE,
        verbose=0,
    )


def load_for_training(path: Path, env: VecEnv, seed: int, fast_engine: bool = False) -> BaseAlgorithm:
    """Weights *and* optimizer state from ``path``, re-seeded with ``seed``, attached to ``env``."""
    return algorithm_class(saved_algorithm(path), fast_engine).load(path, env=env, device=DEVICE, seed=seed)
