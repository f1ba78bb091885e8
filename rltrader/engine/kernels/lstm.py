"""The LSTM recurrence of a training minibatch, compiled with numba: forward and backward.

Why compiled: a RecurrentPPO minibatch holds a few long sequences (8 accounts x 256
steps cut into 512-step minibatches: about 3 sequences of up to 256 steps). The input
projection of all those steps is one large matrix product that torch does well; what is
left is a chain of dependent steps, each a (few x H) x (H x 4H) product plus the gates:
far too small for BLAS or oneDNN to keep a core busy, and latency-bound. Here one step is
a vectorized column update of the gates plus one vectorized ``exp`` pass for all gates.
Sequences step two at a time (longest first) so that each read of the recurrent weights
from L2 serves both; with the same sums in the same order, the results are bit for bit
those of one sequence at a time. Timings: ``bench/README.md`` (training engine).

The math is torch's LSTM (gate order input, forget, candidate, output), in float32. The
only differences are summation order and ``exp`` (a Cephes polynomial, within 1e-7
relative of the exact value, where libm's ``expf`` is not vectorizable here), so outputs
and gradients agree with ``nn.LSTM`` to float32 rounding (``tests/test_engine.py``).

Layout: sequences are *packed*, sequence ``s`` occupying rows ``starts[s]`` to
``starts[s] + lengths[s] - 1`` of every ``(R, ...)`` array; padding never enters.

:func:`exp_into`, :func:`engine_cell` (:func:`lstm_cell`, the one LSTM step) and
:func:`add_products` are the building blocks the rollout kernel
(:mod:`rltrader.engine.kernels.rollout`) shares; the fast evaluator steps the same
:func:`lstm_cell` with its own nonlinearities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

_EXP_LOW, _EXP_HIGH = np.float32(-87.0), np.float32(88.0)
_ROUNDING = np.float32(12582912.0)  # 1.5 x 2**23: adding and subtracting it rounds to an integer


@njit(cache=True, nogil=True, inline="always")
def exp_into(x: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
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
def lstm_cell(gates: np.ndarray, act: np.ndarray, c: np.ndarray, tanh_cell: np.ndarray, h: np.ndarray,
              exps: np.ndarray, bits: np.ndarray, activate_gates: Any, squash_cell: Any) -> None:
    """One LSTM step from its pre-activation ``gates`` (4H, torch's order: input, forget, candidate,
    output): ``c`` updated in place, ``act`` (the activated gates), ``tanh_cell`` and ``h`` written.

    The one definition of the recurrence, shared by the training engine (float32, one vectorized
    ``exp`` pass: :func:`float32_gate_activations`, :func:`float32_cell_squash`) and the fast
    evaluator (libm's ``exp`` in double precision: ``rltrader.engine.kernels.actors``). Each
    passes its own nonlinearities (numba compiles the cell once per pair, inlined); the
    combination ``c = f c + i g``, ``h = o tanh(c)`` is this one, in this operand order.

    :param gates: pre-activation gates; the nonlinearities may use it as scratch
    :param act: the activated gates, written (float64 for the evaluator: its gates are not rounded)
    :param exps: scratch for the vectorized ``exp`` (4H; unused by the evaluator's nonlinearities)
    :param bits: int32 scratch for the vectorized ``exp``'s scale (4H)
    :param activate_gates: ``(gates, act, exps, bits)``: sigmoid of i, f, o and tanh of g into ``act``
    :param squash_cell: ``(c, tanh_cell, gates, exps, bits)``: ``tanh(c)`` into ``tanh_cell``
    """
    size = c.shape[0]
    activate_gates(gates, act, exps, bits)
    for u in range(size):
        c[u] = act[size + u] * c[u] + act[u] * act[2 * size + u]
    squash_cell(c, tanh_cell, gates, exps, bits)
    for u in range(size):
        h[u] = act[3 * size + u] * tanh_cell[u]


@njit(cache=True, nogil=True, inline="always")
def float32_gate_activations(gates: np.ndarray, act: np.ndarray, exps: np.ndarray, bits: np.ndarray) -> None:
    """sigmoid(x) = 1 / (1 + exp(-x)) and tanh(x) = 2 sigmoid(2x) - 1, so every gate is one vectorized
    ``exp`` pass (``gates`` is overwritten)."""
    size = gates.shape[0] // 4
    one, two = np.float32(1.0), np.float32(2.0)
    for u in range(4 * size):
        gates[u] = -gates[u]
    for u in range(2 * size, 3 * size):
        gates[u] = two * gates[u]
    exp_into(gates, exps, bits)
    for u in range(4 * size):
        act[u] = one / (one + exps[u])
    for u in range(2 * size, 3 * size):
        act[u] = two * act[u] - one


@njit(cache=True, nogil=True, inline="always")
def float32_cell_squash(c: np.ndarray, tanh_cell: np.ndarray, gates: np.ndarray, exps: np.ndarray,
                        bits: np.ndarray) -> None:
    """tanh(c) = 2 / (1 + exp(-2c)) - 1 through the vectorized ``exp`` (``gates[:H]`` as scratch)."""
    size = c.shape[0]
    one, two = np.float32(1.0), np.float32(2.0)
    for u in range(size):
        gates[u] = -two * c[u]
    exp_into(gates[:size], exps, bits)
    for u in range(size):
        tanh_cell[u] = two / (one + exps[u]) - one


@njit(cache=True, nogil=True, inline="always")
def engine_cell(gates: np.ndarray, act: np.ndarray, c: np.ndarray, tanh_cell: np.ndarray, h: np.ndarray,
                exps: np.ndarray, bits: np.ndarray) -> None:
    """:func:`lstm_cell` with the engine's float32 nonlinearities: what training's passes step."""
    lstm_cell(gates, act, c, tanh_cell, h, exps, bits, float32_gate_activations, float32_cell_squash)


@njit(cache=True, nogil=True, inline="always")
def add_products(out: np.ndarray, matrix: np.ndarray, vectors: np.ndarray) -> None:
    """``out[n] += vectors[n] @ matrix`` for every row ``n``, as column updates, four matrix rows per pass.

    Four rows per pass load ``out[n]`` once for four multiply-adds: without it the loop is
    bound by storing ``out`` back (one store per multiply-add). Each group of four rows is
    loaded once for all rows of ``out``: the matrix (W_hh, 256 KB at H=128) streams from L2
    once per step, and that stream bounds a single sequence's step, so sequences (or
    accounts) stepping together share it. Each row's sums are in the same order whatever
    the number of rows, so results do not depend on how sequences are grouped.
    """
    width = out.shape[1]
    k = 0
    while k + 4 <= matrix.shape[0]:
        row_a, row_b, row_c, row_d = matrix[k], matrix[k + 1], matrix[k + 2], matrix[k + 3]
        for n in range(out.shape[0]):
            a, b, c, d = vectors[n, k], vectors[n, k + 1], vectors[n, k + 2], vectors[n, k + 3]
            o = out[n]
            for j in range(width):
                o[j] += a * row_a[j] + b * row_b[j] + c * row_c[j] + d * row_d[j]
        k += 4
    while k < matrix.shape[0]:
        row_a = matrix[k]
        for n in range(out.shape[0]):
            a, o = vectors[n, k], out[n]
            for j in range(width):
                o[j] += a * row_a[j]
        k += 1


@njit(cache=True, nogil=True)
def _pairs_by_length(lengths: np.ndarray) -> np.ndarray:
    """Sequences longest first, as (longer, shorter) pairs; an odd one out is paired with -1.

    Neighbours in length step together for as long as the shorter runs.
    """
    order = np.argsort(-lengths, kind="mergesort")
    pairs = np.full(((order.shape[0] + 1) // 2, 2), -1, np.int64)
    for p in range(order.shape[0]):
        pairs[p // 2, p % 2] = order[p]
    return pairs


@njit(cache=True, nogil=True, inline="always")
def _start_pair(first: np.ndarray, second: np.ndarray, first_from: np.ndarray, second_from: np.ndarray,
                longer: int, shorter: int, lengths: np.ndarray) -> int:
    """Load a pair's two running states (row 0 the longer sequence, row 1 the shorter) and
    return how many steps the two take together (0 for an odd one out)."""
    first[0], second[0] = first_from[longer], second_from[longer]
    if shorter < 0:
        return 0
    first[1], second[1] = first_from[shorter], second_from[shorter]
    return lengths[shorter]


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
    """Run every sequence from its initial state, two at a time; keep what the backward pass needs."""
    size = hidden0.shape[1]
    gates = np.empty((2, 4 * size), np.float32)
    exps = np.empty(4 * size, np.float32)
    bits = np.empty(4 * size, np.int32)
    h = np.empty((2, size), np.float32)
    c = np.empty((2, size), np.float32)
    for longer, shorter in _pairs_by_length(lengths):
        together = _start_pair(h, c, hidden0, cell0, longer, shorter, lengths)
        for t in range(lengths[longer]):
            stepping = 2 if t < together else 1
            rows = (starts[longer] + t, starts[shorter] + t)  # the second is read only when stepping is 2
            for n in range(stepping):
                previous_hidden[rows[n]] = h[n]
                gates[n] = input_gates[rows[n]]
            add_products(gates[:stepping], weight_hh_t, h[:stepping])
            for n in range(stepping):
                engine_cell(gates[n], activations[rows[n]], c[n], tanh_cell[rows[n]], h[n], exps, bits)
                cell[rows[n]], hidden[rows[n]] = c[n], h[n]


@njit(cache=True, nogil=True, inline="always")
def _gate_grads(act: np.ndarray, tc: np.ndarray, above: np.ndarray, previous_cell: np.ndarray, dh: np.ndarray,
                dc: np.ndarray, d: np.ndarray) -> None:
    """One step back: ``d`` = dLoss/d(pre-activation gates) from dh, dc (of this step's outputs) and
    the gradient from above; ``dc`` becomes the previous cell's gradient (dh is left to the caller)."""
    size = dh.shape[0]
    one = np.float32(1.0)
    for u in range(size):
        i, f, g, o = act[u], act[size + u], act[2 * size + u], act[3 * size + u]
        dh_u = dh[u] + above[u]
        dc_u = dc[u] + dh_u * o * (one - tc[u] * tc[u])
        d[u] = dc_u * g * i * (one - i)
        d[size + u] = dc_u * previous_cell[u] * f * (one - f)
        d[2 * size + u] = dc_u * i * (one - g * g)
        d[3 * size + u] = dh_u * tc[u] * o * (one - o)
        dc[u] = dc_u * f


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
    """Back through time, two sequences at a time. ``grad_gates`` is all the weights need:
    dW_ih, dW_hh and the biases are products of it with the inputs (done in torch)."""
    size = weight_hh.shape[1]
    dh = np.empty((2, size), np.float32)
    dc = np.empty((2, size), np.float32)
    d = np.empty((2, 4 * size), np.float32)
    for longer, shorter in _pairs_by_length(lengths):
        together = _start_pair(dh, dc, grad_last_hidden, grad_last_cell, longer, shorter, lengths)
        for t in range(lengths[longer] - 1, -1, -1):
            stepping = 2 if t < together else 1
            for n in range(stepping):
                sequence = longer if n == 0 else shorter
                r = starts[sequence] + t
                previous_cell = cell[r - 1] if t > 0 else cell0[sequence]
                _gate_grads(activations[r], tanh_cell[r], grad_hidden[r], previous_cell, dh[n], dc[n], d[n])
                grad_gates[r] = d[n]
                dh[n] = 0.0
            add_products(dh[:stepping], weight_hh, d[:stepping])
        grad_hidden0[longer], grad_cell0[longer] = dh[0], dc[0]
        if shorter >= 0:
            grad_hidden0[shorter], grad_cell0[shorter] = dh[1], dc[1]


__all__ = ["add_products", "engine_cell", "exp_into", "float32_cell_squash", "float32_gate_activations",
           "lstm_backward", "lstm_cell", "lstm_forward"]
