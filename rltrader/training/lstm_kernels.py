"""The LSTM recurrence of a training minibatch, compiled with numba: forward and backward.

Why compiled: a RecurrentPPO minibatch holds a few long sequences (8 accounts x 256
steps cut into 512-step minibatches: about 3 sequences of up to 256 steps). The input
projection of all those steps is one large matrix product that torch does well; what is
left is 256 dependent steps of a (3 x 128) x (128 x 512) product plus the gates, far too
small for BLAS or oneDNN to run at more than a fraction of the core (oneDNN's fused LSTM
takes about 21 us per step, forward and backward, at this size). Here one step is a
vectorized column update of the gates plus one vectorized ``exp`` pass for all gates:
about 4.5 us forward and 4 us backward.

The math is torch's LSTM (gate order input, forget, candidate, output), in float32. The
only differences are summation order and ``exp`` (a Cephes polynomial, within 1e-7
relative of the exact value, where libm's ``expf`` is not vectorizable here), so outputs
and gradients agree with ``nn.LSTM`` to float32 rounding (``tests/test_engine.py``).

Layout: sequences are *packed*, sequence ``s`` occupying rows ``starts[s]`` to
``starts[s] + lengths[s] - 1`` of every ``(R, ...)`` array; padding never enters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EXP_LOW, _EXP_HIGH = np.float32(-87.0), np.float32(88.0)
_ROUNDING = np.float32(12582912.0)  # 1.5 x 2**23: adding and subtracting it rounds to an integer


@njit(cache=True, nogil=True, inline="always")
def _exp_into(x: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """``out = exp(x)`` in float32, vectorizable (no libm call, no branches).

    Cephes' ``expf``: ``x = k ln 2 + r`` with ``|r| <= ln 2 / 2``, a degree-6 polynomial
    for ``exp(r)``, and ``2**k`` built from its IEEE bits in ``bits`` (int32 scratch whose
    float32 view is the scale). Inputs are clamped to [-87, 88], where float32 ends.
    """
    scale = bits.view(np.float32)
    for u in range(x.shape[0]):
        v = x[u]
        v = v if v > _EXP_LOW else _EXP_LOW
        v = v if v < _EXP_HIGH else _EXP_HIGH
        k = (v * np.float32(1.44269504088896341) + _ROUNDING) - _ROUNDING
        r = v - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[u] = p * r * r + r + np.float32(1.0)
        bits[u] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for u in range(x.shape[0]):
        out[u] *= scale[u]


@njit(cache=True, nogil=True, inline="always")
def _add_vector_matrix(out: np.ndarray, matrix: np.ndarray, vector: np.ndarray) -> None:
    """``out += vector @ matrix`` as column updates, four matrix rows per pass.

    Four rows per pass load ``out`` once for four multiply-adds: without it the loop is
    bound by storing ``out`` back (one store per multiply-add).
    """
    width = out.shape[0]
    k = 0
    while k + 4 <= vector.shape[0]:
        a, b, c, d = vector[k], vector[k + 1], vector[k + 2], vector[k + 3]
        row_a, row_b, row_c, row_d = matrix[k], matrix[k + 1], matrix[k + 2], matrix[k + 3]
        for j in range(width):
            out[j] += a * row_a[j] + b * row_b[j] + c * row_c[j] + d * row_d[j]
        k += 4
    while k < vector.shape[0]:
        a, row_a = vector[k], matrix[k]
        for j in range(width):
            out[j] += a * row_a[j]
        k += 1


@njit(cache=True, nogil=True)
def lstm_forward(
    input_gates: np.ndarray,  # float32 (R, 4H): x W_ih^T + b_ih + b_hh of every real step
    weight_hh_t: np.ndarray,  # float32 (H, 4H): W_hh transposed
    hidden0: np.ndarray,  # float32 (S, H)
    cell0: np.ndarray,  # float32 (S, H)
    starts: np.ndarray,  # int64 (S,): first row of each sequence
    lengths: np.ndarray,  # int64 (S,)
    hidden: np.ndarray,  # float32 (R, H): written, h_t
    previous_hidden: np.ndarray,  # float32 (R, H): written, h_{t-1} (for dW_hh)
    cell: np.ndarray,  # float32 (R, H): written, c_t
    tanh_cell: np.ndarray,  # float32 (R, H): written, tanh(c_t)
    activations: np.ndarray,  # float32 (R, 4H): written, the gates after their sigmoid / tanh
) -> None:
    """Run every sequence from its initial state; keep what the backward pass needs."""
    size = hidden0.shape[1]
    one, two = np.float32(1.0), np.float32(2.0)
    gates = np.empty(4 * size, np.float32)
    exps = np.empty(4 * size, np.float32)
    bits = np.empty(4 * size, np.int32)
    h = np.empty(size, np.float32)
    c = np.empty(size, np.float32)
    for s in range(lengths.shape[0]):
        h[:] = hidden0[s]
        c[:] = cell0[s]
        for r in range(starts[s], starts[s] + lengths[s]):
            previous_hidden[r] = h
            gates[:] = input_gates[r]
            _add_vector_matrix(gates, weight_hh_t, h)
            # sigmoid(x) = 1 / (1 + exp(-x)); tanh(x) = 2 sigmoid(2x) - 1
            for u in range(4 * size):
                gates[u] = -gates[u]
            for u in range(2 * size, 3 * size):
                gates[u] = two * gates[u]
            _exp_into(gates, exps, bits)
            act = activations[r]
            for u in range(4 * size):
                act[u] = one / (one + exps[u])
            for u in range(2 * size, 3 * size):
                act[u] = two * act[u] - one
            for u in range(size):
                c[u] = act[size + u] * c[u] + act[u] * act[2 * size + u]
                gates[u] = -two * c[u]
            _exp_into(gates[:size], exps, bits)
            tc = tanh_cell[r]
            for u in range(size):
                tc[u] = two / (one + exps[u]) - one
                h[u] = act[3 * size + u] * tc[u]
            cell[r] = c
            hidden[r] = h


@njit(cache=True, nogil=True)
def lstm_backward(
    weight_hh: np.ndarray,  # float32 (4H, H)
    grad_hidden: np.ndarray,  # float32 (R, H): dLoss/dh_t from above (the outputs' gradient)
    grad_last_hidden: np.ndarray,  # float32 (S, H): dLoss/dh of each sequence's final state
    grad_last_cell: np.ndarray,  # float32 (S, H)
    activations: np.ndarray,  # float32 (R, 4H): from lstm_forward
    tanh_cell: np.ndarray,  # float32 (R, H)
    cell: np.ndarray,  # float32 (R, H)
    cell0: np.ndarray,  # float32 (S, H)
    starts: np.ndarray,  # int64 (S,)
    lengths: np.ndarray,  # int64 (S,)
    grad_gates: np.ndarray,  # float32 (R, 4H): written, dLoss/d(pre-activation gates)
    grad_hidden0: np.ndarray,  # float32 (S, H): written
    grad_cell0: np.ndarray,  # float32 (S, H): written
) -> None:
    """Back through time, sequence by sequence. ``grad_gates`` is all the weights need:
    dW_ih, dW_hh and the biases are products of it with the inputs (done in torch)."""
    size = weight_hh.shape[1]
    one = np.float32(1.0)
    dh = np.empty(size, np.float32)
    dc = np.empty(size, np.float32)
    for s in range(lengths.shape[0]):
        dh[:] = grad_last_hidden[s]
        dc[:] = grad_last_cell[s]
        for r in range(starts[s] + lengths[s] - 1, starts[s] - 1, -1):
            act, tc, above = activations[r], tanh_cell[r], grad_hidden[r]
            previous_cell = cell[r - 1] if r > starts[s] else cell0[s]
            d = grad_gates[r]
            for u in range(size):
                i, f, g, o = act[u], act[size + u], act[2 * size + u], act[3 * size + u]
                dh_u = dh[u] + above[u]
                dc_u = dc[u] + dh_u * o * (one - tc[u] * tc[u])
                d[u] = dc_u * g * i * (one - i)
                d[size + u] = dc_u * previous_cell[u] * f * (one - f)
                d[2 * size + u] = dc_u * i * (one - g * g)
                d[3 * size + u] = dh_u * tc[u] * o * (one - o)
                dc[u] = dc_u * f
            dh[:] = 0.0
            _add_vector_matrix(dh, weight_hh, d)
        grad_hidden0[s] = dh
        grad_cell0[s] = dc
