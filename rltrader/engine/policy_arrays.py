"""A recurrent SB3 policy as float32 arrays: what the compiled kernels read instead of torch modules.

Two kernels run a ``RecurrentActorCriticPolicy`` without torch: the engine's rollout step
(:mod:`rltrader.engine.rollout_step`, both LSTMs and both heads) and the fast evaluator
(:mod:`rltrader.evaluation.fast`, the actor alone). Each lays the arrays out its own way
for its loop, but both start here, so there is one reading of a policy: which modules a
head may hold, how an activation is coded, how an LSTM layer's weights and biases combine.

Layouts follow the kernels' column updates: dense weights are stored transposed,
``(inputs, outputs)``; an LSTM layer keeps torch's gate order (input, forget, candidate,
output) and its two biases summed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch as th
from torch import nn

from rltrader.engine.kernels.activations import IDENTITY, RELU, TANH

ACTIVATION_CODES: dict[type[nn.Module], int] = {nn.Identity: IDENTITY, nn.Tanh: TANH, nn.ReLU: RELU}
"""The activations the kernels implement, by module type, and the code they read."""


class UnsupportedPolicyError(ValueError):
    """The policy has a part the compiled kernels do not implement; callers fall back to torch."""


def float32(tensor: th.Tensor) -> np.ndarray:
    """A parameter as a float32 numpy copy, detached and on the CPU."""
    return tensor.detach().cpu().numpy().astype(np.float32)


@dataclass(frozen=True)
class DenseLayer:
    """One linear layer and the activation after it."""

    weight_t: np.ndarray  # float32 (inputs, outputs)
    bias: np.ndarray  # float32 (outputs,); zeros for a layer without bias
    activation: int  # IDENTITY, TANH or RELU

    @property
    def inputs(self) -> int:
        return self.weight_t.shape[0]

    @property
    def outputs(self) -> int:
        return self.weight_t.shape[1]


def dense_layers(modules: Iterable[nn.Module], where: str) -> list[DenseLayer]:
    """Linear layers, each followed by at most one supported activation, as :class:`DenseLayer` s.

    ``where`` names the part of the policy in the error raised for anything else (a
    normalization, dropout, an unsupported activation, two activations in a row).
    """
    layers: list[DenseLayer] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            bias = np.zeros(module.out_features, np.float32) if module.bias is None else float32(module.bias)
            layers.append(DenseLayer(np.ascontiguousarray(float32(module.weight).T), bias, IDENTITY))
        elif type(module) in ACTIVATION_CODES and layers and layers[-1].activation == IDENTITY:
            layers[-1] = DenseLayer(layers[-1].weight_t, layers[-1].bias, ACTIVATION_CODES[type(module)])
        else:
            raise UnsupportedPolicyError(f"{where} layer {type(module).__name__} is not supported by the kernels")
    return layers


def actor_head(policy: nn.Module) -> list[DenseLayer]:
    """The actor's layers after its LSTM: the policy MLP, then the action logits layer."""
    return dense_layers([*policy.mlp_extractor.policy_net, policy.action_net], "actor head")


def critic_head(policy: nn.Module) -> list[DenseLayer]:
    """The critic's layers after its LSTM: the value MLP, then the value layer."""
    return dense_layers([*policy.mlp_extractor.value_net, policy.value_net], "critic head")


@dataclass(frozen=True)
class LstmLayer:
    """One layer of an ``nn.LSTM`` in torch's layout (gate rows input, forget, candidate, output)."""

    weight_ih: np.ndarray  # float32 (4H, inputs)
    weight_hh: np.ndarray  # float32 (4H, H)
    bias: np.ndarray  # float32 (4H,): b_ih + b_hh, zeros for an LSTM without bias


def lstm_layers(lstm: nn.LSTM) -> list[LstmLayer]:
    """Every layer of ``lstm``; refuses the variants the kernels do not step (bidirectional, projections)."""
    if lstm.bidirectional or lstm.proj_size:
        raise UnsupportedPolicyError("bidirectional LSTMs and LSTM projections are not supported by the kernels")
    layers = []
    for layer in range(lstm.num_layers):
        weight_hh = float32(getattr(lstm, f"weight_hh_l{layer}"))
        bias = np.zeros(weight_hh.shape[0], np.float32)
        if lstm.bias:
            bias = float32(getattr(lstm, f"bias_ih_l{layer}")) + float32(getattr(lstm, f"bias_hh_l{layer}"))
        layers.append(LstmLayer(float32(getattr(lstm, f"weight_ih_l{layer}")), weight_hh, bias))
    return layers


__all__ = [
    "ACTIVATION_CODES",
    "DenseLayer",
    "LstmLayer",
    "UnsupportedPolicyError",
    "actor_head",
    "critic_head",
    "dense_layers",
    "float32",
    "lstm_layers",
]
