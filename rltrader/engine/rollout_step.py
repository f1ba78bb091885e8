"""The rollout step on the compiled kernel: one torch product, then :func:`policy_step`.

During a rollout the policy's weights do not change (they change only in the update), so
what the kernel reads is laid out once per rollout in :class:`RolloutStepWeights`: both
LSTMs' layer-0 input weights stacked for a single product, the recurrent weights
transposed, the heads' layers flattened. :meth:`RolloutStepWeights.of` returns ``None``
for any policy shape the kernel does not cover, and the caller keeps the torch step.

With the observation skip (:class:`~rltrader.engine.policies.ObservationSkipPolicy`) each head's
first layer reads ``[LSTM output | observation]``: its observation columns join the same product
(the observation is multiplied once for both LSTMs and both heads), and the kernel's first head
layer adds that part to its product with the LSTM output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from torch import nn

from rltrader.engine.kernels.rollout import policy_step
from rltrader.engine.policy_arrays import (
    DenseLayer,
    LstmLayer,
    UnsupportedPolicyError,
    actor_head,
    critic_head,
    lstm_layers,
)


def _stacked(lstms: list[list[LstmLayer]], part: str, layers: range, transpose: bool = False) -> np.ndarray:
    """(2 LSTMs, layers, ...) float32 array of each layer's ``part``, transposed if asked."""
    def per_lstm(lstm: list[LstmLayer]) -> np.ndarray:
        if not layers:
            size = lstm[0].weight_hh.shape[1]
            return np.empty((0, size, 4 * size), np.float32)
        return np.stack([getattr(lstm[layer], part).T if transpose else getattr(lstm[layer], part)
                         for layer in layers])

    return np.ascontiguousarray(np.stack([per_lstm(lstm) for lstm in lstms]), dtype=np.float32)


def _flattened_heads(heads: list[list[DenseLayer]], lstm_width: int | None = None
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
    """All heads' transposed weights and biases in one flat array, and per head its layers' rows
    (weight offset, bias offset, inputs, outputs, activation).

    :param lstm_width: under the observation skip, the LSTM output's width: each head's first layer
        keeps only the weights of those inputs (its observation part is projected beforehand)
    """
    pieces: list[np.ndarray] = []
    offset = 0
    descriptions = []
    for head in heads:
        rows = []
        for index, layer in enumerate(head):
            weight_t = layer.weight_t[:lstm_width] if index == 0 and lstm_width is not None else layer.weight_t
            rows.append((offset, offset + weight_t.size, weight_t.shape[0], layer.outputs, layer.activation))
            pieces += [np.ascontiguousarray(weight_t).ravel(), layer.bias]
            offset += weight_t.size + layer.outputs
        descriptions.append(np.array(rows, dtype=np.int64))
    return np.concatenate(pieces).astype(np.float32), descriptions


@dataclass(frozen=True)
class RolloutStepWeights:
    """The policy's weights laid out for :func:`policy_step`; valid while the weights do not change."""

    input_weight: th.Tensor  # (2 x 4H [+ W0 actor + W0 critic], input): both LSTMs' layer-0 W_ih [and the heads'
    # first-layer observation columns, under the skip]: one product per step
    bias: np.ndarray  # (2, L, 4H): b_ih + b_hh
    weight_hh_t: np.ndarray  # (2, L, H, 4H)
    upper_weight_ih_t: np.ndarray  # (2, L - 1, H, 4H)
    params: np.ndarray  # every head layer's transposed weight and bias, flat
    actor_layers: np.ndarray  # (k, 5) int64: weight offset, bias offset, inputs, outputs, activation
    critic_layers: np.ndarray
    skip_widths: tuple[int, int]  # the actor's and the critic's first head layer widths under the skip, else (0, 0)

    @classmethod
    def of(cls, policy: RecurrentActorCriticPolicy) -> RolloutStepWeights | None:
        """The layout of ``policy``'s weights now; None for a shape the kernel does not cover."""
        lstms = (policy.lstm_actor, policy.lstm_critic)
        if (policy.lstm_critic is None
                or any(p.dtype != th.float32 or p.device.type != "cpu" for p in policy.parameters())
                or len({(lstm.num_layers, lstm.hidden_size, lstm.input_size) for lstm in lstms}) != 1):
            return None
        with th.no_grad():
            try:
                layers = [lstm_layers(lstm) for lstm in lstms]
                heads = [actor_head(policy), critic_head(policy)]
            except UnsupportedPolicyError:
                return None
            depth = range(policy.lstm_actor.num_layers)
            bias = _stacked(layers, "bias", depth)
            weight_hh_t = _stacked(layers, "weight_hh", depth, transpose=True)
            upper_weight_ih_t = _stacked(layers, "weight_ih", depth[1:], transpose=True)
            skip = getattr(policy, "observation_skip", False)
            hidden = policy.lstm_actor.hidden_size
            params, (actor_layers, critic_layers) = _flattened_heads(heads, hidden if skip else None)
            products = [policy.lstm_actor.weight_ih_l0, policy.lstm_critic.weight_ih_l0]
            if skip:  # the heads' first layers: torch weight (outputs, H + observation), observation columns
                products += [th.from_numpy(np.ascontiguousarray(head[0].weight_t[hidden:].T)) for head in heads]
            input_weight = th.cat(products).contiguous()
            skip_widths = (heads[0][0].outputs, heads[1][0].outputs) if skip else (0, 0)
        return cls(input_weight, bias, weight_hh_t, upper_weight_ih_t, params, actor_layers, critic_layers,
                   skip_widths)

    def step(self, features: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor,
             deterministic: bool) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """The stock rollout step's outputs: actions, values, log-probabilities, new states.

        The action is drawn by ``torch.multinomial`` from the kernel's probabilities, as
        ``Categorical.sample`` draws it, so the random stream is consumed identically.
        """
        accounts = features.shape[0]
        projected = nn.functional.linear(features, self.input_weight).numpy()
        gates_width = projected.shape[1] - sum(self.skip_widths)
        input_gates = projected[:, :gates_width].reshape(accounts, 2, -1)
        actor_added = np.ascontiguousarray(projected[:, gates_width:gates_width + self.skip_widths[0]])
        critic_added = np.ascontiguousarray(projected[:, gates_width + self.skip_widths[0]:])
        states = [np.ascontiguousarray(state.numpy()) for state in (*lstm_states.pi, *lstm_states.vf)]
        new_states = [np.empty_like(state) for state in states]
        n_actions = int(self.actor_layers[-1, 3])
        log_probabilities = np.empty((accounts, n_actions), np.float32)
        probabilities = np.empty((accounts, n_actions), np.float32)
        values = np.empty((accounts, 1), np.float32)
        keep = np.ascontiguousarray((1.0 - episode_starts).numpy(), dtype=np.float32)
        policy_step(input_gates, self.bias, self.weight_hh_t, self.upper_weight_ih_t, keep, *states,
                    self.params, self.actor_layers, self.critic_layers, actor_added, critic_added, *new_states,
                    log_probabilities, probabilities, values)
        probabilities_t = th.from_numpy(probabilities)
        if deterministic:
            actions = th.argmax(probabilities_t, dim=1)
        else:
            actions = th.multinomial(probabilities_t, 1, True).T.reshape(-1)
        log_prob = th.from_numpy(log_probabilities).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        hidden_pi, cell_pi, hidden_vf, cell_vf = (th.from_numpy(state) for state in new_states)
        return actions, th.from_numpy(values), log_prob, RNNStates((hidden_pi, cell_pi), (hidden_vf, cell_vf))


__all__ = ["RolloutStepWeights"]
