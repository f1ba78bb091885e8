"""The fast recurrent engine: stock RecurrentPPO, with the LSTM work done the short way.

Three places where sb3-contrib's ``RecurrentActorCriticPolicy`` does more work than the
math needs, and what the engine does instead (measured in ``bench/training_throughput.py``):

1. **Minibatches with episode starts.** ``_process_sequence`` runs the fused ``nn.LSTM``
   only when no sequence in the batch contains an episode start; otherwise it steps the
   LSTM one timestep at a time in Python (about 9x slower per epoch), resetting the state
   where an episode starts. But the rollout buffer cuts sequences at episode starts, so a
   start can only be the *first* step of a sequence. Resetting the state there is the
   same as zeroing that sequence's initial hidden and cell state and running the whole
   batch in one fused call. Only a sequence with a start after its first step (which the
   stock buffer never builds) still takes the stock per-step loop.
2. **Padding.** The buffer pads every sequence of a minibatch to the longest one, and the
   padded steps go through the LSTM only to be masked out of every loss term. A minibatch
   of 512 steps that spans three accounts' rollouts pads to 768. ``SequenceLengthRolloutBuffer``
   tells the policy each sequence's true length; the policy runs the LSTM over the
   sequences sorted by length, dropping each from the batch as it ends (one fused call
   per distinct length), and leaves zeros at the padded steps.
3. **Single steps.** Rollouts feed one step per account. Through ``nn.LSTM`` (oneDNN) that
   step costs about 330 us on this CPU; through ``torch.lstm_cell`` about 145 us.
4. **Adam.** torch's single-tensor CPU Adam launches several kernels per parameter
   tensor; the fused CPU kernel does the same update in one (about 1.5 ms saved per
   minibatch).

The algorithm is sb3-contrib's, untouched: same minibatches, same losses, same updates.
The outputs at real steps agree with the stock policy to float rounding
(``tests/test_engine.py``); a saved model loads into stock ``RecurrentPPO``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples
from torch import nn

LSTMStates = tuple[th.Tensor, th.Tensor]

SEQUENCE_LENGTHS = "sequence_lengths"
"""Attribute of a minibatch's ``episode_starts`` tensor holding its sequences' true lengths.

It rides on the tensor that the policy receives anyway, so it cannot go stale: a tensor
without it (any caller other than the buffer below) simply takes the padded fused path.
"""


def starts_only_at_sequence_heads(episode_starts: th.Tensor) -> bool:
    """True when no sequence (columns of the (length, n_seq) tensor) starts an episode after step 0."""
    return episode_starts.shape[0] == 1 or not bool(th.any(episode_starts[1:] != 0))


def single_step(features: th.Tensor, states: LSTMStates, lstm: nn.LSTM) -> tuple[th.Tensor, LSTMStates]:
    """One timestep (features (n_seq, input)) layer by layer through ``torch.lstm_cell``."""
    hidden, cell = [], []
    layer_input = features
    for layer in range(lstm.num_layers):
        weights = [getattr(lstm, f"{name}_l{layer}", None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h, c = th.lstm_cell(layer_input, (states[0][layer], states[1][layer]), *weights)
        hidden.append(h)
        cell.append(c)
        layer_input = h
    return layer_input, (th.stack(hidden), th.stack(cell))


def unpadded_sequence_pass(features_sequence: th.Tensor, states: LSTMStates, lengths: th.Tensor,
                           lstm: nn.LSTM) -> tuple[th.Tensor, LSTMStates]:
    """The LSTM over (max length, n_seq, input) computing only each sequence's real steps.

    Sequences are sorted longest first, so the ones still running are always a prefix of
    the batch: each stretch between two distinct lengths is one fused call on that prefix.
    Padded steps of the output are zero; the returned states are each sequence's state at
    its own last step.
    """
    n_seq = features_sequence.shape[1]
    order = th.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    inputs = features_sequence[:, order]
    hidden, cell = states[0][:, order], states[1][:, order]
    pieces = []
    start = 0
    for end in sorted(set(sorted_lengths)):
        running = sum(length >= end for length in sorted_lengths)
        output, (h, c) = lstm(inputs[start:end, :running], (hidden[:, :running], cell[:, :running]))
        pieces.append(nn.functional.pad(output, (0, 0, 0, n_seq - running)))
        hidden = th.cat((h, hidden[:, running:]), dim=1)
        cell = th.cat((c, cell[:, running:]), dim=1)
        start = end
    restore = th.argsort(order)
    return th.cat(pieces)[:, restore], (hidden[:, restore], cell[:, restore])


class FusedLstmPolicy(RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` whose LSTM passes take the fused, unpadded or single-cell path when exact.

    Its Adam runs on torch's fused CPU kernel (one kernel instead of several per tensor).
    SB3 gives Adam ``eps=1e-5`` only when no ``optimizer_kwargs`` are passed, so that
    default is restated here: passing ``{"fused": True}`` alone would change the update.
    """

    def __init__(self, *args: Any, optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            optimizer_kwargs = {"eps": 1e-5, "fused": True}
        super().__init__(*args, optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs, **kwargs)

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: LSTMStates,
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, LSTMStates]:
        n_seq = lstm_states[0].shape[1]
        # (padded batch, features) -> (max length, n_seq, features), as in sb3-contrib
        features_sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        if not starts_only_at_sequence_heads(starts):
            return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
        keep = (1.0 - starts[0]).view(1, n_seq, 1)
        initial = (keep * lstm_states[0], keep * lstm_states[1])
        if features_sequence.shape[0] == 1:
            return single_step(features_sequence[0], initial, lstm)
        lengths = getattr(episode_starts, SEQUENCE_LENGTHS, None)
        if lengths is not None and int(lengths.min()) < features_sequence.shape[0]:
            output, states = unpadded_sequence_pass(features_sequence, initial, lengths, lstm)
        else:
            output, states = lstm(features_sequence, initial)
        return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states


class SequenceLengthRolloutBuffer(RecurrentRolloutBuffer):
    """sb3-contrib's recurrent buffer, same minibatches, telling the policy each sequence's length."""

    def _get_samples(self, batch_inds: np.ndarray, env_change: np.ndarray,
                     env: Any = None) -> RecurrentRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env_change, env)
        # create_sequencers cuts the minibatch at these indices; the last sequence runs to its end
        ends = np.append(self.seq_start_indices[1:], len(batch_inds))
        setattr(samples.episode_starts, SEQUENCE_LENGTHS, th.as_tensor(ends - self.seq_start_indices))
        return samples


class FusedRecurrentPPO(RecurrentPPO):
    """sb3-contrib's ``RecurrentPPO`` (same algorithm) on the engine's buffer and policy.

    Saved models are ordinary ``RecurrentPPO`` zips: stock ``RecurrentPPO.load`` reads
    them (the policy class is importable from here), and this class reads stock ones.
    """

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.observation_space, spaces.Dict):
            self.rollout_buffer.__class__ = SequenceLengthRolloutBuffer
