"""Which algorithm a saved model is, and the class that reads it back.

Here rather than in ``training/`` because every reader of a model needs it (the trainer's
warm starts, the evaluator, ``rltrader evaluate``) and none of them should depend on the
training loop to open a zip.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Literal

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from rltrader.engine.algorithm import FusedRecurrentPPO

Algorithm = Literal["recurrent", "feedforward"]
DEVICE = "cpu"  # policies this size run faster on the CPU than through a GPU round trip per step


def algorithm_class(algorithm: Algorithm, fast_engine: bool = False) -> type[BaseAlgorithm]:
    """Recurrent: the engine or stock sb3-contrib (``fast_engine``); feed-forward: SB3's ``PPO``,
    whose update has no LSTM work for the engine to save.

    :param algorithm: ``recurrent`` or ``feedforward`` (``training.algorithm``)
    :param fast_engine: the fused recurrent engine instead of stock ``RecurrentPPO``
    """
    if algorithm == "feedforward":
        return PPO
    return FusedRecurrentPPO if fast_engine else RecurrentPPO


def saved_algorithm(path: str | Path) -> Algorithm:
    """Which algorithm saved the zip at ``path``: recurrent if its policy has an LSTM actor.

    Read from the weights rather than the pickled class, so stock and engine recurrent
    zips and any SB3 version's ``PPO`` zip are told apart the same way."""
    with zipfile.ZipFile(path) as archive:
        weights = torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu", weights_only=True)
    return "recurrent" if any(key.startswith("lstm_actor.") for key in weights) else "feedforward"


__all__ = ["DEVICE", "Algorithm", "algorithm_class", "saved_algorithm"]
