"""The engine's rollout buffer: sb3-contrib's minibatches, telling the policy each sequence's length.

Like ``sb3_contrib/common/recurrent/buffers.py`` beside its algorithm, this holds the
buffer alone; :mod:`rltrader.engine.policies` reads the lengths it attaches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer, create_sequencers
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples, RNNStates

SEQUENCE_LENGTHS = "sequence_lengths"
"""Attribute of a minibatch's ``episode_starts`` tensor holding its sequences' true lengths.

It rides on the tensor that the policy receives anyway, so it cannot go stale: a tensor
without it (any caller other than the buffer below) simply takes the padded fused path.
"""


class SequenceLengthRolloutBuffer(RecurrentRolloutBuffer):
    """sb3-contrib's recurrent buffer, same minibatches, telling the policy each sequence's length.

    The minibatch is also assembled faster: sb3-contrib pads each of nine fields with a
    ``torch.tensor`` per sequence and ``pad_sequence``; here each field is one numpy
    gather into a zero-filled padded array. Same tensors, element for element
    (``tests/test_engine.py``).
    """

    def _get_samples(self, batch_inds: np.ndarray, env_change: np.ndarray,
                     env: Any = None) -> RecurrentRolloutBufferSamples:
        self.seq_start_indices, self.pad, self.pad_and_flatten = create_sequencers(
            self.episode_starts[batch_inds], env_change[batch_inds], self.device)
        # create_sequencers cuts the minibatch at these indices; the last sequence runs to its end
        starts = self.seq_start_indices
        lengths = np.append(starts[1:], len(batch_inds)) - starts
        n_seq, max_length = len(starts), int(lengths.max())
        within = np.arange(len(batch_inds)) - np.repeat(starts, lengths)  # step within its sequence
        padded_rows = np.repeat(np.arange(n_seq) * max_length, lengths) + within

        def padded(values: np.ndarray) -> th.Tensor:
            out = np.zeros((n_seq * max_length, *values.shape[1:]), dtype=values.dtype)
            out[padded_rows] = values[batch_inds]
            return th.from_numpy(out).to(self.device)

        def initial_states(states: np.ndarray) -> th.Tensor:
            # (n_envs * n_steps, n_layers, dim) -> (n_layers, n_seq, dim), as sb3-contrib
            return self.to_torch(states[batch_inds[starts]].swapaxes(0, 1)).contiguous()

        episode_starts = padded(self.episode_starts).flatten()
        setattr(episode_starts, SEQUENCE_LENGTHS, th.as_tensor(lengths))
        return RecurrentRolloutBufferSamples(
            observations=padded(self.observations).reshape((n_seq * max_length, *self.obs_shape)),
            actions=padded(self.actions).reshape((n_seq * max_length, *self.actions.shape[1:])),
            old_values=padded(self.values).flatten(),
            old_log_prob=padded(self.log_probs).flatten(),
            advantages=padded(self.advantages).flatten(),
            returns=padded(self.returns).flatten(),
            lstm_states=RNNStates((initial_states(self.hidden_states_pi), initial_states(self.cell_states_pi)),
                                  (initial_states(self.hidden_states_vf), initial_states(self.cell_states_vf))),
            episode_starts=episode_starts,
            mask=padded(np.ones_like(self.returns)).flatten(),
        )


__all__ = ["SEQUENCE_LENGTHS", "SequenceLengthRolloutBuffer"]
