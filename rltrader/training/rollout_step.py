"""The rollout step on the compiled kernel: one torch product, then :func:`policy_step`.

During a rollout the policy's weights do not change (they change only in the update), so
what the kernel reads is laid out once per rollout in :class:`RolloutStepWeights`: both
LSTMs' layer-0 input weights stacked for a single product, the recurrent weights
transposed, the heads' layers flattened. :meth:`RolloutStepWeights.of` returns ``None``
for any policy shape the kernel does not cover, and the caller keeps the torch step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from torch import nn

from rltrader.training.rollout_kernels import IDENTITY, RELU, TANH, policy_step

_ACTIVATIONS = {nn.Tanh: TANH, nn.ReLU: RELU}


def _head_layers(modules: list[nn.Module]) -> list[tuple[nn.Linear, int]] | None:
    """Linear layers each followed by at most one supported activation; ``None`` for anything else."""
    layers: list[tuple[nn.Linear, int]] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            layers.append((module, IDENTITY))
        elif type(module) in _ACTIVATIONS and layers and layers[-1][1] == IDENTITY:
            layers[-1] = (layers[-1][0], _ACTIVATIONS[type(module)])
        else:
            return None
    return layers


def _per_lstm(lstms: tuple[nn.LSTM, ...], name: str, layers: range, transpose: bool = False) -> np.ndarray:
    """(n LSTMs, layers, ...) float32 copy of each LSTM's ``{name}_l{layer}``, transposed if asked."""
    def weights(lstm: nn.LSTM) -> np.ndarray:
        if not layers:
            return np.empty((0, lstm.hidden_size, 4 * lstm.hidden_size), np.float32)
        tensors = [getattr(lstm, f"{name}_l{layer}") for layer in layers]
        return np.stack([(tensor.t() if transpose else tensor).detach().numpy() for tensor in tensors])

    return np.ascontiguousarray(np.stack([weights(lstm) for lstm in lstms]), dtype=np.float32)


def _flattened_heads(heads: list[list[tuple[nn.Linear, int]]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """All heads' transposed weights and biases in one flat array, and per head its layers' rows
    (weight offset, bias offset, inputs, outputs, activation)."""
    pieces: list[np.ndarray] = []
    offset = 0
    descriptions = []
    for head in heads:
        rows = []
        for linear, activation in head:
            weight_t = linear.weight.detach().t().contiguous().numpy().ravel()
            bias = th.zeros(linear.out_features) if linear.bias is None else linear.bias
            rows.append((offset, offset + weight_t.size, linear.in_features, linear.out_features, activation))
            pieces += [weight_t, bias.detach().numpy()]
            offset += weight_t.size + linear.out_features
        descriptions.append(np.array(rows, dtype=np.int64))
    return np.concatenate(pieces).astype(np.float32), descriptions


@dataclass(frozen=True)
class RolloutStepWeights:
    """The policy's weights laid out for :func:`policy_step`; valid while the weights do not change."""

    input_weight: th.Tensor  # (2 x 4H, input): the actor's and the critic's layer-0 W_ih, one product per step
    bias: np.ndarray  # (2, L, 4H): b_ih + b_hh
    weight_hh_t: np.ndarray  # (2, L, H, 4H)
    upper_weight_ih_t: np.ndarray  # (2, L - 1, H, 4H)
    params: np.ndarray  # every head layer's transposed weight and bias, flat
    actor_layers: np.ndarray  # (k, 5) int64: weight offset, bias offset, inputs, outputs, activation
    critic_layers: np.ndarray

    @classmethod
    def of(cls, policy: RecurrentActorCriticPolicy) -> RolloutStepWeights | None:
        lstms = (policy.lstm_actor, policy.lstm_critic)
        actor = _head_layers([*policy.mlp_extractor.policy_net, policy.action_net])
        critic = _head_layers([*policy.mlp_extractor.value_net, policy.value_net])
        if (policy.lstm_critic is None or actor is None or critic is None
                or any(p.dtype != th.float32 or p.device.type != "cpu" for p in policy.parameters())
                or len({(lstm.num_layers, lstm.hidden_size, lstm.input_size) for lstm in lstms}) != 1
                or any(lstm.bidirectional or lstm.proj_size or not lstm.bias for lstm in lstms)):
            return None
        with th.no_grad():
            layers = range(policy.lstm_actor.num_layers)
            bias = _per_lstm(lstms, "bias_ih", layers) + _per_lstm(lstms, "bias_hh", layers)
            weight_hh_t = _per_lstm(lstms, "weight_hh", layers, transpose=True)
            upper_weight_ih_t = _per_lstm(lstms, "weight_ih", layers[1:], transpose=True)
            params, (actor_layers, critic_layers) = _flattened_heads([actor, critic])
            input_weight = th.cat([policy.lstm_actor.weight_ih_l0, policy.lstm_critic.weight_ih_l0]).contiguous()
        return cls(input_weight, bias, weight_hh_t, upper_weight_ih_t, params, actor_layers, critic_layers)

    def step(self, features: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor,
             deterministic: bool) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """The stock rollout step's outputs: actions, values, log-probabilities, new states.

        The action is drawn by ``torch.multinomial`` from the kernel's probabilities, as
        ``Categorical.sample`` draws it, so the random stream is consumed identically.
        """
        accounts = features.shape[0]
        input_gates = nn.functional.linear(features, self.input_weight).numpy().reshape(accounts, 2, -1)
        states = [np.ascontiguousarray(state.numpy()) for state in (*lstm_states.pi, *lstm_states.vf)]
        new_states = [np.empty_like(state) for state in states]
        n_actions = int(self.actor_layers[-1, 3])
        log_probabilities = np.empty((accounts, n_actions), np.float32)
        probabilities = np.empty((accounts, n_actions), np.float32)
        values = np.empty((accounts, 1), np.float32)
        keep = np.ascontiguousarray((1.0 - episode_starts).numpy(), dtype=np.float32)
        policy_step(input_gates, self.bias, self.weight_hh_t, self.upper_weight_ih_t, keep, *states,
                    self.params, self.actor_layers, self.critic_layers, *new_states,
                    log_probabilities, probabilities, values)
        probabilities_t = th.from_numpy(probabilities)
        if deterministic:
            actions = th.argmax(probabilities_t, dim=1)
        else:
            actions = th.multinomial(probabilities_t, 1, True).T.reshape(-1)
        log_prob = th.from_numpy(log_probabilities).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        hidden_pi, cell_pi, hidden_vf, cell_vf = (th.from_numpy(state) for state in new_states)
        return actions, th.from_numpy(values), log_prob, RNNStates((hidden_pi, cell_pi), (hidden_vf, cell_vf))
