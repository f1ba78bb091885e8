"""Building a fresh RecurrentPPO and loading a saved one for further training.

Loading is where SB3's defaults bite this loop: ``load`` restores the saved seed (every
iteration would explore identically) and the saved schedules. The seed is therefore
passed explicitly, and the trainer applies the phase's hyperparameters after loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.vec_env import VecEnv

from rltrader.config import TrainingConfig
from rltrader.engine import FusedLstmPolicy, FusedRecurrentPPO
from rltrader.training.phases import Hyperparameters

ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
DEVICE = "cpu"  # MlpLstm policies this size run faster on the CPU than through a GPU round trip per step


def policy_kwargs(training: TrainingConfig) -> dict[str, Any]:
    policy = training.policy
    return {
        "lstm_hidden_size": policy.lstm_hidden_size,
        "n_lstm_layers": policy.n_lstm_layers,
        "net_arch": {"pi": list(policy.net_arch_pi), "vf": list(policy.net_arch_vf)},
        "activation_fn": ACTIVATIONS[policy.activation],
        "enable_critic_lstm": policy.enable_critic_lstm,
    }


def algorithm(fast_engine: bool) -> type[RecurrentPPO]:
    """The engine (:mod:`rltrader.engine`) or stock sb3-contrib with its stock ``MlpLstmPolicy``."""
    return FusedRecurrentPPO if fast_engine else RecurrentPPO


def build_model(env: VecEnv, training: TrainingConfig, hyper: Hyperparameters, seed: int,
                fast_engine: bool = False) -> RecurrentPPO:
    """A fresh model with the run's network sizes and the iteration's hyperparameters."""
    return algorithm(fast_engine)(
        FusedLstmPolicy if fast_engine else "MlpLstmPolicy", env,
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


def load_for_training(path: Path, env: VecEnv, seed: int, fast_engine: bool = False) -> RecurrentPPO:
    """Weights *and* optimizer state from ``path``, re-seeded with ``seed``, attached to ``env``."""
    return algorithm(fast_engine).load(path, env=env, device=DEVICE, seed=seed)
