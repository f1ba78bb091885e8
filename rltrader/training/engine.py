"""The fast recurrent engine: stock RecurrentPPO, with the LSTM work done the short way.

Where sb3-contrib's ``RecurrentActorCriticPolicy`` does more work than the
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
   per distinct length), and leaves zeros at the padded steps. (The update's minibatches
   now take item 5; this ``nn.LSTM`` path serves every other multi-step call.)
3. **Single steps.** Rollouts feed one step per account. Through ``nn.LSTM`` (oneDNN) that
   step costs about 330 us on this CPU; through ``torch.lstm_cell`` about 145 us.
4. **Adam.** torch's single-tensor CPU Adam launches several kernels per parameter
   tensor; the fused CPU kernel does the same update in one (about 1.5 ms saved per
   minibatch).
5. **The LSTM of a minibatch** (:mod:`rltrader.training.packed_lstm`): with sequence
   lengths known, both LSTMs run on the packed real steps: one input projection each, the
   recurrence compiled (:mod:`rltrader.training.lstm_kernels`, two sequences stepping
   together so they share each read of the recurrent weights). The heads, the
   log-probabilities and the entropy (``Categorical``'s arithmetic, without building the
   distribution) run on the real steps too, and only the three outputs are padded back.
   With two threads the actor's and the critic's LSTM passes run side by side, and so do
   their whole backward passes (heads included: actor and critic share no parameters).
6. **Minibatch assembly**: one numpy gather per field instead of a tensor per sequence.
7. **The rollout step** (:mod:`rltrader.training.rollout_step`): one torch product
   projects the observations onto both LSTMs, then one compiled call does both LSTM cells,
   both heads and the action probabilities; the action is drawn by ``torch.multinomial``
   as ``Categorical.sample`` draws it (same random stream). About 25 small torch ops per
   step become two calls (900 -> 580 us per step of 8 accounts). Outside a rollout, or for
   shapes the kernel does not cover, the step is torch's, without the distribution
   objects (the same numbers as stock, bit for bit).

The algorithm is sb3-contrib's, untouched: same minibatches, same losses, same updates.
The outputs agree with the stock policy to float rounding
(``tests/test_engine.py``); a saved model loads into stock ``RecurrentPPO``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer, create_sequencers
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RecurrentRolloutBufferSamples, RNNStates
from stable_baselines3.common.distributions import CategoricalDistribution
from torch import nn

from rltrader.training.packed_lstm import PackedLayout, applies_to, joined_towers, packed_lstm_passes, run_jobs
from rltrader.training.rollout_step import RolloutStepWeights

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
        self.lstm_threads = 1  # threads for the actor's and the critic's LSTM passes; set by FusedRecurrentPPO.train
        self.rollout_weights: RolloutStepWeights | None = None  # set during a rollout, see compiled_rollout

    @contextmanager
    def compiled_rollout(self) -> Iterator[None]:
        """Rollout steps (:meth:`forward` without gradients) on the compiled kernel while inside.

        The kernel reads the weights laid out once on entry, so nothing may change the
        weights inside: ``FusedRecurrentPPO.collect_rollouts`` enters it, and weights change
        only in the update. Shapes the kernel does not cover keep the torch step.
        """
        self.rollout_weights = RolloutStepWeights.of(self)
        try:
            yield
        finally:
            self.rollout_weights = None

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

    def forward(self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor,
                deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """sb3-contrib's rollout step (one step per account) without its distribution objects.

        Same ops in the same order as the stock path where numbers are made: the LSTM cells
        (:func:`single_step`), the MLPs, and ``torch.distributions.Categorical``'s own
        arithmetic for the action (logits normalized by ``logsumexp``, ``softmax``, one
        ``multinomial`` draw, so the random stream is consumed identically). What goes is
        the distribution objects, their argument validation and the sequence reshaping.
        Anything but a discrete action space with actor and critic LSTMs takes the stock method.
        """
        if (not isinstance(self.action_dist, CategoricalDistribution) or self.lstm_critic is None
                or not self.share_features_extractor or not isinstance(obs, th.Tensor)):
            return super().forward(obs, lstm_states, episode_starts, deterministic)
        features = self.extract_features(obs)
        if (self.rollout_weights is not None and not th.is_grad_enabled()
                and features.dtype == th.float32 and features.device.type == "cpu"):
            return self.rollout_weights.step(features, lstm_states, episode_starts, deterministic)
        keep = (1.0 - episode_starts).view(1, -1, 1)
        latent_pi, states_pi = single_step(features, (keep * lstm_states.pi[0], keep * lstm_states.pi[1]),
                                           self.lstm_actor)
        latent_vf, states_vf = single_step(features, (keep * lstm_states.vf[0], keep * lstm_states.vf[1]),
                                           self.lstm_critic)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        logits = self.action_net(self.mlp_extractor.forward_actor(latent_pi))
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        probabilities = nn.functional.softmax(logits, dim=-1)
        if deterministic:
            actions = th.argmax(probabilities, dim=1)
        else:
            actions = th.multinomial(probabilities, 1, True).T.reshape(-1)
        log_prob = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return actions, values, log_prob, RNNStates(states_pi, states_vf)

    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates,
                         episode_starts: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """sb3-contrib's ``evaluate_actions`` with both LSTM passes on the compiled recurrence.

        Taken for the engine buffer's minibatches (their ``episode_starts`` carry the
        sequence lengths) when the starts sit at sequence heads only; anything else goes
        through the stock method, i.e. :meth:`_process_sequence` above.
        """
        lengths = getattr(episode_starts, SEQUENCE_LENGTHS, None)
        n_seq = lstm_states.pi[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1))
        if (lengths is None or not isinstance(obs, th.Tensor) or starts.shape[1] == 1
                or not starts_only_at_sequence_heads(starts.T)
                or not all(applies_to(lstm, obs) for lstm in (self.lstm_actor, self.lstm_critic) if lstm is not None)):
            return super().evaluate_actions(obs, actions, lstm_states, episode_starts)
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        lstms = [(pi_features, lstm_states.pi, self.lstm_actor)]
        if self.lstm_critic is not None:
            lstms.append((vf_features, lstm_states.vf, self.lstm_critic))
        keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
        lstms = [(lstm_features, (keep * states[0], keep * states[1]), lstm) for lstm_features, states, lstm in lstms]
        layout = PackedLayout.from_lengths(lengths.numpy(), starts.shape[1])
        # everything from here on runs on the real steps only; the three outputs are padded at the end
        packed_actions = actions.index_select(0, layout.rows)
        if self.lstm_critic is not None and not pi_features.requires_grad and not vf_features.requires_grad:
            # actor and critic share nothing: one LSTM pass per thread, one backward per thread
            def lstm_pass(item: tuple[th.Tensor, LSTMStates, nn.LSTM]) -> th.Tensor:
                return packed_lstm_passes([item], layout)[0][0]

            latent_pi, latent_vf = run_jobs([functools.partial(lstm_pass, item) for item in lstms], self.lstm_threads)
            log_prob, entropy = self._log_prob_and_entropy(self.mlp_extractor.forward_actor(latent_pi), packed_actions)
            values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
            (log_prob, entropy), (values,) = joined_towers([(log_prob, entropy), (values,)], self.lstm_threads)
            return layout.pad(values), layout.pad(log_prob), layout.pad(entropy)
        if len({lstm.num_layers for _, _, lstm in lstms}) == 1:
            passes = packed_lstm_passes(lstms, layout, self.lstm_threads)
        else:
            passes = [packed_lstm_passes([item], layout)[0] for item in lstms]
        latent_pi = passes[0][0]
        if self.lstm_critic is not None:
            latent_vf = passes[1][0]
        elif self.shared_lstm:
            latent_vf = latent_pi.detach()
        else:
            latent_vf = self.critic(vf_features.index_select(0, layout.rows))
        log_prob, entropy = self._log_prob_and_entropy(self.mlp_extractor.forward_actor(latent_pi), packed_actions)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        return layout.pad(values), layout.pad(log_prob), layout.pad(entropy)

    def _log_prob_and_entropy(self, latent_pi: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The action distribution's ``log_prob(actions)`` and ``entropy()``.

        For a discrete action space this is ``Categorical``'s own arithmetic, op for op (so
        the same numbers and gradients), without building the distribution: its argument
        validation costs as much as the arithmetic.
        """
        if not isinstance(self.action_dist, CategoricalDistribution):
            distribution = self._get_action_dist_from_latent(latent_pi)
            return distribution.log_prob(actions), distribution.entropy()
        logits = self.action_net(latent_pi)
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        probabilities = nn.functional.softmax(logits, dim=-1)
        log_prob = logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return log_prob, -(logits.clamp(min=th.finfo(logits.dtype).min) * probabilities).sum(-1)


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
