"""One rollout step of the policy after the input projection, compiled: LSTM cells, heads, action distribution.

Why compiled: a rollout step for 8 accounts is about 25 small torch ops (an ``lstm_cell``
per LSTM, six linear layers, four ``tanh``, ``logsumexp``, ``softmax``, the state masks),
each paying its dispatch cost for a few thousand multiply-adds: most of the step went to
dispatch (``bench/README.md``). The one large product of the step, the observations'
projection onto both LSTMs' input weights, stays in torch (MKL); everything after it is
this one call.

The math is the stock policy's, in float32: states zeroed where an episode starts, torch's
LSTM cell (gate order input, forget, candidate, output), each head a stack of linear
layers with tanh or ReLU, and ``torch.distributions.Categorical``'s normalization (logits
minus their ``logsumexp``; probabilities as ``softmax``). The only differences are
summation order and ``exp`` (:func:`rltrader.engine.kernels.lstm.exp_into`, within
1e-7 relative), so the numbers agree to float32 rounding (``tests/test_engine.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rltrader.engine.kernels.activations import RELU, TANH
from rltrader.engine.kernels.lstm import add_products, engine_cell, exp_into


@njit(cache=True, nogil=True)
def _lstm_cells(
    lstm: int,  # 0 actor, 1 critic
    input_gates: np.ndarray,  # float32 (N, 2, 4H): layer 0's input projection x W_ih^T (no bias), per LSTM
    bias: np.ndarray,  # float32 (2, L, 4H): b_ih + b_hh
    weight_hh_t: np.ndarray,  # float32 (2, L, H, 4H): W_hh transposed
    upper_weight_ih_t: np.ndarray,  # float32 (2, L - 1, H, 4H): W_ih of layers 1.. transposed
    hidden: np.ndarray,  # float32 (L, N, H)
    cell: np.ndarray,  # float32 (L, N, H)
    keep: np.ndarray,  # float32 (N,): 0 where an episode starts (the state is zeroed), else 1
    new_hidden: np.ndarray,  # float32 (L, N, H): written
    new_cell: np.ndarray,  # float32 (L, N, H): written
) -> None:
    layers, accounts, size = hidden.shape
    gates = np.empty((accounts, 4 * size), np.float32)
    h = np.empty((accounts, size), np.float32)
    act = np.empty(4 * size, np.float32)
    exps = np.empty(4 * size, np.float32)
    bits = np.empty(4 * size, np.int32)
    tanh_cell = np.empty(size, np.float32)
    for layer in range(layers):
        for n in range(accounts):
            for u in range(4 * size):
                gates[n, u] = bias[lstm, layer, u]
            if layer == 0:
                for u in range(4 * size):
                    gates[n, u] += input_gates[n, lstm, u]
            for u in range(size):
                h[n, u] = keep[n] * hidden[layer, n, u]
                new_cell[layer, n, u] = keep[n] * cell[layer, n, u]
        if layer > 0:
            add_products(gates, upper_weight_ih_t[lstm, layer - 1], new_hidden[layer - 1])
        add_products(gates, weight_hh_t[lstm, layer], h)
        for n in range(accounts):
            engine_cell(gates[n], act, new_cell[layer, n], tanh_cell, new_hidden[layer, n], exps, bits)


@njit(cache=True, nogil=True)
def _dense_layers(x: np.ndarray, params: np.ndarray, layers: np.ndarray, first_added: np.ndarray) -> np.ndarray:
    """``x`` (N, in) through the linear layers described by ``layers`` rows (see :func:`policy_step`);
    ``first_added`` (N, outputs of the first layer, or N x 0 for none) joins the first layer's sum before
    its activation: the observation's part of a head's first layer under the observation skip."""
    one, two = np.float32(1.0), np.float32(2.0)
    for row in range(layers.shape[0]):
        weight_at, bias_at, n_in, n_out, activation = (layers[row, 0], layers[row, 1], layers[row, 2],
                                                       layers[row, 3], layers[row, 4])
        weight_t = params[weight_at:weight_at + n_in * n_out].reshape((n_in, n_out))
        out = np.empty((x.shape[0], n_out), np.float32)
        exps = np.empty(n_out, np.float32)
        bits = np.empty(n_out, np.int32)
        for n in range(x.shape[0]):
            out[n] = params[bias_at:bias_at + n_out]
            if row == 0 and first_added.shape[1] > 0:
                out[n] += first_added[n]
        add_products(out, weight_t, x)
        for n in range(x.shape[0]):
            y = out[n]
            if activation == TANH:  # tanh(x) = 2 / (1 + exp(-2x)) - 1, one vectorized exp pass
                for u in range(n_out):
                    exps[u] = -two * y[u]
                exp_into(exps, exps, bits)
                for u in range(n_out):
                    y[u] = two / (one + exps[u]) - one
            elif activation == RELU:
                for u in range(n_out):
                    y[u] = y[u] if y[u] > 0 else np.float32(0.0)
        x = out
    return x


@njit(cache=True, nogil=True)
def policy_step(
    input_gates: np.ndarray,  # float32 (N, 2, 4H): layer 0's input projection per LSTM (actor, critic)
    bias: np.ndarray,  # float32 (2, L, 4H)
    weight_hh_t: np.ndarray,  # float32 (2, L, H, 4H)
    upper_weight_ih_t: np.ndarray,  # float32 (2, L - 1, H, 4H)
    keep: np.ndarray,  # float32 (N,)
    hidden_pi: np.ndarray, cell_pi: np.ndarray, hidden_vf: np.ndarray, cell_vf: np.ndarray,  # (L, N, H)
    params: np.ndarray,  # float32: every head layer's transposed weight and bias, flat
    actor_layers: np.ndarray,  # int64 (k, 5): weight offset, bias offset, inputs, outputs, activation
    critic_layers: np.ndarray,  # int64 (m, 5): the same, ending in the value layer
    actor_added: np.ndarray,  # float32 (N, W0) or (N, 0): the observation's part of the actor's first layer (skip)
    critic_added: np.ndarray,  # float32 (N, W0) or (N, 0): the same for the critic
    new_hidden_pi: np.ndarray, new_cell_pi: np.ndarray, new_hidden_vf: np.ndarray, new_cell_vf: np.ndarray,
    log_probabilities: np.ndarray,  # float32 (N, A): written, logits minus their logsumexp
    probabilities: np.ndarray,  # float32 (N, A): written, softmax of those
    values: np.ndarray,  # float32 (N, 1): written
) -> None:
    """Both LSTM cells, the actor's head to the action distribution, the critic's to the value."""
    _lstm_cells(0, input_gates, bias, weight_hh_t, upper_weight_ih_t, hidden_pi, cell_pi, keep,
                new_hidden_pi, new_cell_pi)
    _lstm_cells(1, input_gates, bias, weight_hh_t, upper_weight_ih_t, hidden_vf, cell_vf, keep,
                new_hidden_vf, new_cell_vf)
    values[:] = _dense_layers(new_hidden_vf[-1], params, critic_layers, critic_added)
    logits = _dense_layers(new_hidden_pi[-1], params, actor_layers, actor_added)
    for n in range(logits.shape[0]):  # torch's logsumexp: max + log(sum(exp(x - max)))
        row = logits[n]
        top = row.max()
        total = np.float32(0.0)
        for a in range(row.shape[0]):
            total += np.exp(row[a] - top)
        normalizer = top + np.log(total)
        for a in range(row.shape[0]):
            log_probabilities[n, a] = row[a] - normalizer
        top = log_probabilities[n].max()  # softmax, as torch computes it on the normalized logits
        total = np.float32(0.0)
        for a in range(row.shape[0]):
            probabilities[n, a] = np.exp(log_probabilities[n, a] - top)
            total += probabilities[n, a]
        for a in range(row.shape[0]):
            probabilities[n, a] /= total


__all__ = ["policy_step"]
