"""The fast recurrent engine: every RecurrentPPO minibatch through one fused LSTM call.

sb3-contrib's ``RecurrentActorCriticPolicy._process_sequence`` runs the fused ``nn.LSTM``
only when no sequence in the batch contains an episode start; otherwise it steps the LSTM
one timestep at a time in Python, resetting the state where an episode starts. That
fallback is taken for most training minibatches here (every rollout that follows a reset
holds starts) and costs about 9x per epoch.

But sb3-contrib's rollout buffer cuts sequences at episode starts, so a start can only be
the *first* step of a sequence, and rollouts feed sequences of length one. Resetting the
state at the first step is the same as zeroing the initial hidden and cell states of
those sequences and then running the whole padded batch in one fused call: identical
math, one kernel. Only a sequence with a start after its first step (which the stock
buffer never builds) still takes the stock per-step loop.
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn


def starts_only_at_sequence_heads(episode_starts: th.Tensor) -> bool:
    """True when no sequence (columns of the (length, n_seq) tensor) starts an episode after step 0."""
    return episode_starts.shape[0] == 1 or not bool(th.any(episode_starts[1:] != 0))


class FusedLstmPolicy(RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` whose sequences always take the fused LSTM path when that is exact."""

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        n_seq = lstm_states[0].shape[1]
        # (padded batch, features) -> (max length, n_seq, features), as in sb3-contrib
        features_sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        if not starts_only_at_sequence_heads(starts):
            return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
        keep = (1.0 - starts[0]).view(1, n_seq, 1)
        output, states = lstm(features_sequence, (keep * lstm_states[0], keep * lstm_states[1]))
        return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states
