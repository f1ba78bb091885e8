"""The engine's policy: sb3-contrib's ``MlpLstmPolicy``, its LSTM passes taking the short way when exact.

What :class:`FusedLstmPolicy` does differently, and why, is listed in :mod:`rltrader.engine`;
the outputs agree with the stock policy to float rounding (``tests/test_engine.py``).

Both it and the stock-path :class:`ObservationSkipPolicy` may give the heads a skip connection
around the LSTM (``observation_skip``): the actor's and critic's MLPs read ``[LSTM output |
observation]`` instead of the LSTM output alone. Why: without it the heads see the bar only through
the LSTM's gates, and on an edge a single bar's pattern columns carry the recurrent policy learned it
less well than a feed-forward one reading those columns directly (``bench/README.md``, "What the
recurrent policy lacks"); with it the LSTM only has to add what the bar alone does not say.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

from rltrader.engine.buffers import SEQUENCE_LENGTHS
from rltrader.engine.packed_lstm import (
    LSTMStates,
    PackedLayout,
    applies_to,
    joined_towers,
    packed_lstm_passes,
    run_jobs,
)
from rltrader.engine.rollout_step import RolloutStepWeights


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


class ObservationSkipPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's ``MlpLstmPolicy``, optionally with the heads reading the observation beside the LSTM.

    With ``observation_skip`` off it is ``MlpLstmPolicy`` exactly. On, the actor's and the
    critic's MLPs take ``lstm_hidden_size + features_dim`` inputs, ``[LSTM output | features]``
    row by row: every path that runs an LSTM (rollout step, ``predict``, the update) goes
    through :meth:`_process_sequence`, which appends the features there. The critic needs its
    own LSTM or the shared one (sb3-contrib's LSTM-less critic maps the features onto the LSTM
    output's width, which the skip would make pointless), so that combination is refused.

    :param observation_skip: the heads read ``[LSTM output | observation]`` (a skip connection around the LSTM)
    """

    def __init__(self, *args: Any, observation_skip: bool = False, **kwargs: Any) -> None:
        self.observation_skip = observation_skip  # read by _build_mlp_extractor, which the parent's __init__ calls
        if observation_skip and not (kwargs.get("enable_critic_lstm", True) or kwargs.get("shared_lstm", False)):
            raise ValueError("observation_skip needs a critic LSTM (enable_critic_lstm) or a shared LSTM")
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "observation_skip": self.observation_skip}

    @property
    def head_input_dim(self) -> int:
        """What the heads' first layers read: the LSTM output, and the observation with the skip."""
        return self.lstm_output_dim + (self.features_dim if self.observation_skip else 0)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = MlpExtractor(self.head_input_dim, net_arch=self.net_arch,
                                          activation_fn=self.activation_fn, device=self.device)

    _lstm_sequence = staticmethod(RecurrentActorCriticPolicy._process_sequence)
    """The LSTM over a batch of sequences; subclasses take shorter ways (:class:`FusedLstmPolicy`)."""

    def _process_sequence(self, features: th.Tensor, lstm_states: LSTMStates, episode_starts: th.Tensor,
                          lstm: nn.LSTM) -> tuple[th.Tensor, LSTMStates]:  # type: ignore[override]
        """The LSTM's output rows (the features' order), with the features appended under the skip."""
        output, states = self._lstm_sequence(features, lstm_states, episode_starts, lstm)
        return self.with_skip(output, features), states

    def with_skip(self, latent: th.Tensor, features: th.Tensor | None) -> th.Tensor:
        """``latent`` as the heads read it: ``[latent | features]`` under the skip, else unchanged (``features``
        unread, so a caller may pass None when the skip is off)."""
        return th.cat((latent, features), dim=1) if self.observation_skip else latent


class FusedLstmPolicy(ObservationSkipPolicy):
    """``MlpLstmPolicy`` whose LSTM passes take the fused, unpadded or single-cell path when exact.

    Its Adam runs on torch's fused CPU kernel (one kernel instead of several per tensor).
    SB3 gives Adam ``eps=1e-5`` only when no ``optimizer_kwargs`` are passed, so that
    default is restated here: passing ``{"fused": True}`` alone would change the update.

    :param observation_skip: as :class:`ObservationSkipPolicy`
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
    def _lstm_sequence(
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
        latent_pi, latent_vf = self.with_skip(latent_pi, features), self.with_skip(latent_vf, features)
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
        packed_pi = packed_vf = None  # the observations of the real steps, for the heads under the skip only
        if self.observation_skip:
            packed_pi = pi_features.index_select(0, layout.rows)
            packed_vf = packed_pi if vf_features is pi_features else vf_features.index_select(0, layout.rows)
        if self.lstm_critic is not None and not pi_features.requires_grad and not vf_features.requires_grad:
            # actor and critic share nothing: one LSTM pass per thread, one backward per thread
            def lstm_pass(item: tuple[th.Tensor, LSTMStates, nn.LSTM]) -> th.Tensor:
                return packed_lstm_passes([item], layout)[0][0]

            latent_pi, latent_vf = run_jobs([functools.partial(lstm_pass, item) for item in lstms], self.lstm_threads)
            latent_pi, latent_vf = self.with_skip(latent_pi, packed_pi), self.with_skip(latent_vf, packed_vf)
            log_prob, entropy = self._log_prob_and_entropy(self.mlp_extractor.forward_actor(latent_pi), packed_actions)
            values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
            (log_prob, entropy), (values,) = joined_towers([(log_prob, entropy), (values,)], self.lstm_threads)
            return layout.pad(values), layout.pad(log_prob), layout.pad(entropy)
        if len({lstm.num_layers for _, _, lstm in lstms}) == 1:
            passes = packed_lstm_passes(lstms, layout, self.lstm_threads)
        else:
            passes = [packed_lstm_passes([item], layout)[0] for item in lstms]
        latent_pi = self.with_skip(passes[0][0], packed_pi)
        if self.lstm_critic is not None:
            latent_vf = self.with_skip(passes[1][0], packed_vf)
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


__all__ = ["FusedLstmPolicy", "ObservationSkipPolicy", "single_step", "starts_only_at_sequence_heads",
           "unpadded_sequence_pass"]
