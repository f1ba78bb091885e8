"""The engine's algorithm: sb3-contrib's ``RecurrentPPO``, unchanged, on the engine's buffer and policy.

Like ``sb3_contrib/ppo_recurrent/ppo_recurrent.py``: the algorithm is here, the policy in
:mod:`rltrader.engine.policies`, the buffer in :mod:`rltrader.engine.buffers`.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO

from rltrader.engine.buffers import SequenceLengthRolloutBuffer
from rltrader.engine.policies import FusedLstmPolicy


class FusedRecurrentPPO(RecurrentPPO):
    """sb3-contrib's ``RecurrentPPO`` (same algorithm) on the engine's buffer and policy.

    Saved models are ordinary ``RecurrentPPO`` zips: stock ``RecurrentPPO.load`` reads
    them (the policy class is importable from here), and this class reads stock ones.
    """

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.observation_space, spaces.Dict):
            self.rollout_buffer.__class__ = SequenceLengthRolloutBuffer

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> bool:
        """sb3-contrib's rollout collection, its policy steps on the compiled kernel (the weights are
        fixed until the update)."""
        if not isinstance(self.policy, FusedLstmPolicy):
            return super().collect_rollouts(*args, **kwargs)
        with self.policy.compiled_rollout():
            return super().collect_rollouts(*args, **kwargs)

    def train(self) -> None:
        """The update, with the actor's and the critic's LSTM work on two threads when torch has two.

        With a budget of exactly two threads (``torch.get_num_threads()``, which quiet and
        performance mode set), torch itself is kept on one thread meanwhile and the second
        core runs the critic's LSTM beside the actor's: after every parallel product
        torch's idle OpenMP worker would spin on the second core for milliseconds, which
        the critic's recurrence needs. The budget is restored afterwards. With one thread
        everything runs on it; with more, torch keeps them for its products and the two
        recurrences run one after the other (the split is measured on two cores only).
        """
        threads = th.get_num_threads()
        if threads != 2 or not isinstance(self.policy, FusedLstmPolicy):
            return super().train()
        th.set_num_threads(1)
        self.policy.lstm_threads = 2
        try:
            super().train()
        finally:
            self.policy.lstm_threads = 1
            th.set_num_threads(threads)


__all__ = ["FusedRecurrentPPO"]
