"""The fast evaluator's inner loop, compiled with numba: bars x models x (LSTM, MLP, account).

Why compiled: per bar the actor is one matrix-vector product that matters (the recurrent
weights, 4H x H) and a dozen small ones. Called from numpy, each small step costs a
microsecond of call overhead whatever its size, about half of the time per bar; in one
compiled loop they cost their arithmetic. The large product runs as column updates
(``gates += W[:, c] * x[c]``) over the transposed weights: no reduction, so it
vectorizes without fast-math and keeps pace with BLAS on one core.

Weights arrive packed and transposed (``(K, inputs, outputs)``, K models); see
:meth:`rltrader.evaluation.fast.PackedActors.of`. Gate order is torch's: input, forget,
candidate, output.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from rltrader.engine.kernels.accounts import OPEN_COLUMN, fill, unrealized_percent
from rltrader.engine.kernels.activations import RELU, TANH
from rltrader.engine.kernels.lstm import lstm_cell

STAND_ASIDE_ORDER = 1  # FLAT (rltrader.env.market): the order of an account standing aside, whatever the model decided


@njit(cache=True, nogil=True, inline="always")
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, nogil=True, inline="always")
def _tanh(x: float) -> float:
    """tanh through ``exp`` in double precision: libm's ``tanhf`` costs several ``exp``, and the
    absolute error here (about 1e-16) is far below float32's resolution."""
    return 2.0 / (1.0 + math.exp(-2.0 * x)) - 1.0


@njit(cache=True, nogil=True, inline="always")
def _add_product(out: np.ndarray, weights_t: np.ndarray, inputs: np.ndarray) -> None:
    """``out += weights_t.T @ inputs`` as column updates (vectorizable, no reduction).

    The non-zero inputs' columns are added eight at a time in one pass over ``out``: each element
    still adds them one after another in input order, each product and sum rounded as before (the
    same bits), but ``out`` is loaded and stored once per eight columns instead of once per column."""
    width = out.shape[0]
    n_inputs = inputs.shape[0]
    picked = np.empty(8, dtype=np.int64)
    c = 0
    while c < n_inputs:
        count = 0
        while c < n_inputs and count < 8:
            if inputs[c] != 0.0:
                picked[count] = c
                count += 1
            c += 1
        if count == 8:
            v0, v1, v2, v3 = inputs[picked[0]], inputs[picked[1]], inputs[picked[2]], inputs[picked[3]]
            v4, v5, v6, v7 = inputs[picked[4]], inputs[picked[5]], inputs[picked[6]], inputs[picked[7]]
            w0, w1, w2, w3 = weights_t[picked[0]], weights_t[picked[1]], weights_t[picked[2]], weights_t[picked[3]]
            w4, w5, w6, w7 = weights_t[picked[4]], weights_t[picked[5]], weights_t[picked[6]], weights_t[picked[7]]
            for r in range(width):
                total = (((out[r] + w0[r] * v0) + w1[r] * v1) + w2[r] * v2) + w3[r] * v3
                out[r] = (((total + w4[r] * v4) + w5[r] * v5) + w6[r] * v6) + w7[r] * v7
        else:
            for k in range(count):
                value = inputs[picked[k]]
                weights = weights_t[picked[k]]
                for r in range(width):
                    out[r] += weights[r] * value


@njit(cache=True, nogil=True)
def project_rows(rows: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """``out[r] = bias + weight_t.T @ rows[r]`` for every row: a layer's input projection, one row at a time.

    Why not BLAS: its result for a row depends on how many rows are multiplied at once (OpenBLAS
    takes another kernel, with another summation order, for small products), so one bar projected
    alone would differ in the last bits from the same bar projected in a chunk of a thousand, and a
    near-tie could then flip an action. Here each row is summed alone, inputs in order, whatever the
    number of rows: the fast evaluator's chunks and the live stream's single bars get the same bits."""
    for r in range(rows.shape[0]):
        out[r, :] = bias
        _add_product(out[r], weight_t, rows[r])


@njit(cache=True, nogil=True, inline="always")
def double_gate_activations(gates: np.ndarray, act: np.ndarray, exps: np.ndarray, bits: np.ndarray) -> None:
    """The evaluator's gate nonlinearities for :func:`~rltrader.engine.kernels.lstm.lstm_cell`: libm's
    ``exp`` in double precision, kept in double (``act`` is float64) until the cell is stored."""
    size = gates.shape[0] // 4
    for u in range(size):
        act[u] = _sigmoid(gates[u])
        act[size + u] = _sigmoid(gates[size + u])
        act[2 * size + u] = _tanh(gates[2 * size + u])
        act[3 * size + u] = _sigmoid(gates[3 * size + u])


@njit(cache=True, nogil=True, inline="always")
def double_cell_squash(c: np.ndarray, tanh_cell: np.ndarray, gates: np.ndarray, exps: np.ndarray,
                       bits: np.ndarray) -> None:
    """tanh of the (float32) cell in double precision, into a float64 ``tanh_cell``."""
    for u in range(c.shape[0]):
        tanh_cell[u] = _tanh(c[u])


@njit(cache=True, nogil=True, inline="always")
def _arg_max3(logits: np.ndarray) -> int:
    """The action: arg-max of the first three values, the first on ties (as torch's)."""
    choice = 0
    if logits[1] > logits[choice]:
        choice = 1
    if logits[2] > logits[choice]:
        choice = 2
    return choice


@njit(cache=True, nogil=True, inline="always")
def _settle(k: int, choice: int, t: int, account: np.ndarray, held: np.ndarray, table: np.ndarray,
            sizing: np.ndarray, observed: np.ndarray) -> float:
    """Fill model ``k``'s ``choice`` at bar ``t``'s open and mark its account to ``t``'s close with
    ``TradingEnv.step``'s arithmetic in its order (:func:`rltrader.engine.kernels.accounts.fill`); write the
    next observation's position and PnL % into ``observed``. Returns the step's profit."""
    units, profit = fill(table, t, held[k], choice, account[k, 2], account[k, 1], account[k, 0], sizing[0] != 0.0,
                         sizing[1])
    equity = account[k, 0] + profit
    if choice != held[k]:
        account[k, 1] = table[t, OPEN_COLUMN]
    held[k] = choice
    account[k, 0] = equity
    account[k, 2] = units
    observed[0] = float(choice - 1)
    observed[1] = unrealized_percent(table, t, units, account[k, 1], equity)
    return profit


@njit(cache=True, nogil=True, inline="always")
def _trade(k: int, choice: int, t: int, account: np.ndarray, held: np.ndarray, table: np.ndarray,
           sizing: np.ndarray, taken: np.ndarray, steps: np.ndarray, observed: np.ndarray) -> bool:
    """Record model ``k``'s ``choice`` and settle it at bar ``t`` (:func:`_settle`). True when the
    account is bankrupt (the episode ends there)."""
    taken[k, steps[k]] = choice
    steps[k] += 1
    _settle(k, choice, t, account, held, table, sizing, observed)
    return account[k, 0] <= 0.0


@njit(cache=True, nogil=True, inline="always")
def _dense_stack(k: int, mlp: np.ndarray, mlp_bias: np.ndarray, out_widths: np.ndarray, activations: np.ndarray,
                 width: int, latent: np.ndarray, layer_out: np.ndarray) -> int:
    """Actor ``k``'s dense layers (weights flattened one after another) on ``latent[:width]``, in place;
    returns the last layer's width."""
    weight_at = bias_at = 0
    for m in range(activations.shape[0]):
        out_width = out_widths[m]
        weights = mlp[k, weight_at : weight_at + width * out_width].reshape((width, out_width))
        layer_out[:out_width] = mlp_bias[k, bias_at : bias_at + out_width]
        _add_product(layer_out[:out_width], weights, latent[:width])
        weight_at += width * out_width
        bias_at += out_width
        _activate(layer_out, latent, out_width, activations[m])
        width = out_width
    return width


@njit(cache=True, nogil=True, inline="always")
def _recurrent_scratch(size: int, widest: int) -> tuple:
    """The scratch arrays :func:`_recurrent_logits` writes: gates (float32), the cell's activations and
    tanh(c) in double, the unused fast-exp buffers, the stacked layer input (also the skip layer's
    [LSTM output | position, PnL]), the MLP's latent and layer output, and the logits."""
    return (np.empty(4 * size, dtype=np.float32), np.empty(4 * size, dtype=np.float64),
            np.empty(size, dtype=np.float64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int32),
            np.empty(2 * size + 2, dtype=np.float32), np.zeros(widest, dtype=np.float32),
            np.zeros(widest, dtype=np.float32), np.empty(3, dtype=np.float32))


@njit(cache=True, nogil=True, inline="always")
def _recurrent_logits(k: int, projected: np.ndarray, recurrent: np.ndarray, upper: np.ndarray,
                      upper_bias: np.ndarray, mlp: np.ndarray, mlp_bias: np.ndarray, mlp_widths: np.ndarray,
                      mlp_activation: np.ndarray, action: np.ndarray, action_bias: np.ndarray, skip: np.ndarray,
                      layer0_input: np.ndarray, hidden: np.ndarray, cell: np.ndarray, gates: np.ndarray,
                      activated: np.ndarray, tanh_cell: np.ndarray, unused_exps: np.ndarray, unused_bits: np.ndarray,
                      stacked: np.ndarray, latent: np.ndarray, layer_out: np.ndarray, logits: np.ndarray) -> None:
    """One decision of recurrent actor ``k``: advance its LSTM by one bar from ``projected`` (the bar's
    layer-0 input projection) and write the action logits. The evaluator and the live stream both
    decide through this one function, so the same inputs give the same bits in both.

    Under the observation skip (``skip`` (K, H + 2, W0), W0 > 0), ``projected`` holds the first MLP
    layer's window part after the gates' 4H values; its LSTM-output and position/PnL columns are added
    here, the position and PnL being the observation's (``layer0_input``'s last two values, which the
    account changes only after the decision)."""
    size = hidden.shape[2]
    n_layers = hidden.shape[1]
    gates[:] = projected[:4 * size]
    _add_product(gates, recurrent[k], layer0_input[k])
    lstm_cell(gates, activated, cell[k, 0], tanh_cell, hidden[k, 0], unused_exps, unused_bits,
              double_gate_activations, double_cell_squash)
    layer0_input[k, :size] = hidden[k, 0]
    for layer in range(1, n_layers):
        stacked[:size] = hidden[k, layer - 1]
        stacked[size:2 * size] = hidden[k, layer]
        gates[:] = upper_bias[k, layer - 1]
        _add_product(gates, upper[k, layer - 1], stacked[:2 * size])
        lstm_cell(gates, activated, cell[k, layer], tanh_cell, hidden[k, layer], unused_exps, unused_bits,
                  double_gate_activations, double_cell_squash)
    skip_width = skip.shape[2]
    if skip_width > 0:
        stacked[:size] = hidden[k, n_layers - 1]
        stacked[size:size + 2] = layer0_input[k, size:]
        layer_out[:skip_width] = projected[4 * size:]
        _add_product(layer_out[:skip_width], skip[k], stacked[:size + 2])
        _activate(layer_out, latent, skip_width, mlp_activation[0])
        width = _dense_stack(k, mlp, mlp_bias, mlp_widths[2:], mlp_activation[1:], skip_width, latent, layer_out)
    else:
        latent[:size] = hidden[k, n_layers - 1]
        width = _dense_stack(k, mlp, mlp_bias, mlp_widths[1:], mlp_activation, size, latent, layer_out)
    logits[:] = action_bias[k]
    _add_product(logits, action[k], latent[:width])


@njit(cache=True, nogil=True, inline="always")
def _mlp_logits(k: int, projected: np.ndarray, tail: np.ndarray, mlp: np.ndarray, mlp_bias: np.ndarray,
                mlp_widths: np.ndarray, mlp_activation: np.ndarray, position_pnl: np.ndarray, latent: np.ndarray,
                layer_out: np.ndarray) -> None:
    """One decision of feed-forward actor ``k``: the first layer from ``projected`` plus its position and
    PnL columns, then the later layers; the logits end in ``latent[:3]``."""
    width = mlp_widths[0]
    layer_out[:width] = projected
    _add_product(layer_out[:width], tail[k], position_pnl[k])
    _activate(layer_out, latent, width, mlp_activation[0])
    _dense_stack(k, mlp, mlp_bias, mlp_widths[1:], mlp_activation[1:], width, latent, layer_out)


@njit(cache=True, nogil=True)
def step_actors(
    projected: np.ndarray,  # float32 (B, K, 4H [+ W0]): layer-0 input projection of the feature windows + bias
    # [then the skip layer's window part + bias]
    first_bar: int,  # row of the bar whose close the first decision follows
    recurrent: np.ndarray,  # float32 (K, H + 2, 4H): layer 0 [W_hh | position | PnL]^T
    upper: np.ndarray,  # float32 (K, L - 1, 2H, 4H): layers >= 1, [W_ih | W_hh]^T
    upper_bias: np.ndarray,  # float32 (K, L - 1, 4H)
    mlp: np.ndarray,  # float32 (K, sum of in x out): policy-net layers' W^T, flattened one after another
    mlp_bias: np.ndarray,  # float32 (K, sum of out)
    mlp_widths: np.ndarray,  # int64 (M + 1,): input width (H), then each layer's output width (the skip layer's first)
    mlp_activation: np.ndarray,  # int64 (M,): IDENTITY, TANH or RELU
    action: np.ndarray,  # float32 (K, mlp_widths[-1], 3): action net W^T
    action_bias: np.ndarray,  # float32 (K, 3)
    skip: np.ndarray,  # float32 (K, H + 2, W0): the skip layer's [LSTM output | position, PnL] rows; W0 = 0: none
    layer0_input: np.ndarray,  # float32 (K, H + 2): state, [hidden of layer 0, position, PnL %]
    hidden: np.ndarray,  # float32 (K, L, H): state
    cell: np.ndarray,  # float32 (K, L, H): state
    account: np.ndarray,  # float64 (K, 3): state, equity, entry price and units held
    held: np.ndarray,  # int64 (K,): state, held action
    alive: np.ndarray,  # bool (K,): state, False once bankrupt
    table: np.ndarray,  # float64 (T, 9): MarketData.step_table
    sizing: np.ndarray,  # float64 (2,): fraction sizing (0/1), size (MarketData.fraction_sizing, .size)
    taken: np.ndarray,  # int64 (K, bars of the split): actions, written
    steps: np.ndarray,  # int64 (K,): decisions made so far, advanced
) -> bool:
    """Decide and trade ``B`` bars for every live model; False once every model is bankrupt.

    The account is :meth:`rltrader.env.trading_env.TradingEnv.step`'s arithmetic in the
    same order (so the PnL the policy sees is the environment's to the last bit);
    evaluation never stops early except on bankruptcy, as ``evaluation_config`` says.
    """
    n_bars, n_models = projected.shape[0], projected.shape[1]
    size = hidden.shape[2]
    gates, activated, tanh_cell, unused_exps, unused_bits, stacked, latent, layer_out, logits = \
        _recurrent_scratch(size, mlp_widths.max())
    for j in range(n_bars):
        t = first_bar + j + 1
        any_alive = False
        for k in range(n_models):
            if not alive[k]:
                continue
            any_alive = True
            _recurrent_logits(k, projected[j, k], recurrent, upper, upper_bias, mlp, mlp_bias, mlp_widths,
                              mlp_activation, action, action_bias, skip, layer0_input, hidden, cell, gates, activated,
                              tanh_cell, unused_exps, unused_bits, stacked, latent, layer_out, logits)
            if _trade(k, _arg_max3(logits), t, account, held, table, sizing, taken, steps,
                      layer0_input[k, size:]):
                alive[k] = False
        if not any_alive:
            return False
    for k in range(n_models):
        if alive[k]:
            return True
    return False


@njit(cache=True, nogil=True)
def step_mlp_actors(
    projected: np.ndarray,  # float32 (B, K, W0): first layer's pre-activation from the feature windows + bias
    first_bar: int,  # row of the bar whose close the first decision follows
    tail: np.ndarray,  # float32 (K, 2, W0): first layer's position and PnL columns (W^T rows)
    mlp: np.ndarray,  # float32 (K, sum of in x out): layers after the first, W^T flattened, action layer last
    mlp_bias: np.ndarray,  # float32 (K, sum of out)
    mlp_widths: np.ndarray,  # int64 (M + 1,): W0, then each later layer's output width (3 last)
    mlp_activation: np.ndarray,  # int64 (M + 1,): the first layer's activation, then each later layer's
    position_pnl: np.ndarray,  # float32 (K, 2): state, the observation's last two values
    account: np.ndarray,  # float64 (K, 3): state, equity, entry price and units held
    held: np.ndarray,  # int64 (K,): state, held action
    alive: np.ndarray,  # bool (K,): state, False once bankrupt
    table: np.ndarray,  # float64 (T, 9): MarketData.step_table
    sizing: np.ndarray,  # float64 (2,): fraction sizing (0/1), size (MarketData.fraction_sizing, .size)
    taken: np.ndarray,  # int64 (K, bars of the split): actions, written
    steps: np.ndarray,  # int64 (K,): decisions made so far, advanced
) -> bool:
    """:func:`step_actors` for feed-forward (``MlpPolicy``) actors: no state but the account.

    The first layer's window part arrives projected; only its position and PnL columns
    are added per bar, then the later layers (the action logits last), arg-max and the
    account, in ``TradingEnv.step``'s order.
    """
    n_bars, n_models = projected.shape[0], projected.shape[1]
    widest = mlp_widths.max()
    latent = np.zeros(widest, dtype=np.float32)
    layer_out = np.zeros(widest, dtype=np.float32)
    for j in range(n_bars):
        t = first_bar + j + 1
        any_alive = False
        for k in range(n_models):
            if not alive[k]:
                continue
            any_alive = True
            _mlp_logits(k, projected[j, k], tail, mlp, mlp_bias, mlp_widths, mlp_activation, position_pnl,
                        latent, layer_out)
            if _trade(k, _arg_max3(latent), t, account, held, table, sizing, taken, steps, position_pnl[k]):
                alive[k] = False
        if not any_alive:
            return False
    for k in range(n_models):
        if alive[k]:
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _activate(values: np.ndarray, out: np.ndarray, width: int, code: int) -> None:
    """``out[:width] = activation(values[:width])`` for the codes the kernels implement."""
    for u in range(width):
        value = values[u]
        if code == TANH:
            value = _tanh(value)
        elif code == RELU and value < 0.0:
            value = 0.0
        out[u] = value


@njit(cache=True, nogil=True)
def stream_recurrent_actor(
    projected: np.ndarray,  # float32 (N, 1, 4H [+ W0]): as :func:`step_actors`, for the new bars' windows
    decide: np.ndarray,  # bool (N,): whether a decision is taken at each new bar's close
    table: np.ndarray,  # float64 (N + 1, 9): step-table rows of the bar before the new ones, then the new bars
    pending: np.ndarray,  # int64 (1,): state, the action decided at the last bar and not yet filled (-1: none)
    recurrent: np.ndarray, upper: np.ndarray, upper_bias: np.ndarray, mlp: np.ndarray, mlp_bias: np.ndarray,
    mlp_widths: np.ndarray, mlp_activation: np.ndarray, action: np.ndarray, action_bias: np.ndarray,
    skip: np.ndarray, layer0_input: np.ndarray, hidden: np.ndarray, cell: np.ndarray,  # as :func:`step_actors`, K = 1
    account: np.ndarray, held: np.ndarray, alive: np.ndarray, sizing: np.ndarray,  # as :func:`step_actors`
    actions: np.ndarray,  # int64 (N,): the action decided at each bar (-1: none), written
    logits_out: np.ndarray,  # float32 (N, 3): its logits, written
    profits: np.ndarray,  # float64 (N,): the profit of the fill at each bar (0 without one), written
    filled: np.ndarray,  # bool (N,): whether a pending action was filled at the bar's open, written
    marks: np.ndarray,  # float64 (N, 3): the account after each bar (equity, entry price, units), written
    held_out: np.ndarray,  # int64 (N,): the action held after each bar's fill, written
    stand_aside: bool = False,  # the account sends flat orders whatever the model decides (its decisions are kept)
) -> None:
    """The live order of :func:`step_actors` for one recurrent actor: at each new bar, first fill the
    action pending from the previous close (at this bar's open) and mark the account to this close,
    then decide at this close; the last decision stays pending until the next bar arrives.

    Standing aside (after a break alarm, :mod:`rltrader.live.paper`), the model still decides at every
    close (its LSTM state runs on, seeing the flat position it holds) but the order sent is flat.

    Over the same bars this runs the same arithmetic as :func:`step_actors`, in the same order, through
    the same functions (:func:`_recurrent_logits`, :func:`_settle`), so the actions, the LSTM state and
    the account are bit for bit the fast evaluator's, however the bars are cut into calls."""
    size = hidden.shape[2]
    gates, activated, tanh_cell, unused_exps, unused_bits, stacked, latent, layer_out, logits = \
        _recurrent_scratch(size, mlp_widths.max())
    for j in range(projected.shape[0]):
        actions[j] = -1
        filled[j] = False
        profits[j] = 0.0
        if pending[0] >= 0 and alive[0]:
            profits[j] = _settle(0, pending[0], j + 1, account, held, table, sizing, layer0_input[0, size:])
            filled[j] = True
            if account[0, 0] <= 0.0:
                alive[0] = False
        pending[0] = -1
        if decide[j] and alive[0]:
            _recurrent_logits(0, projected[j, 0], recurrent, upper, upper_bias, mlp, mlp_bias, mlp_widths,
                              mlp_activation, action, action_bias, skip, layer0_input, hidden, cell, gates, activated,
                              tanh_cell, unused_exps, unused_bits, stacked, latent, layer_out, logits)
            actions[j] = _arg_max3(logits)
            logits_out[j] = logits
            pending[0] = STAND_ASIDE_ORDER if stand_aside else actions[j]
        marks[j] = account[0]
        held_out[j] = held[0]


@njit(cache=True, nogil=True)
def stream_mlp_actor(
    projected: np.ndarray,  # float32 (N, 1, W0): first layer's pre-activation from the new bars' windows + bias
    decide: np.ndarray,  # bool (N,)
    table: np.ndarray,  # float64 (N + 1, 9): as :func:`stream_recurrent_actor`
    pending: np.ndarray,  # int64 (1,): state
    tail: np.ndarray, mlp: np.ndarray, mlp_bias: np.ndarray, mlp_widths: np.ndarray,
    mlp_activation: np.ndarray, position_pnl: np.ndarray,  # as :func:`step_mlp_actors`, K = 1
    account: np.ndarray, held: np.ndarray, alive: np.ndarray, sizing: np.ndarray,
    actions: np.ndarray, logits_out: np.ndarray, profits: np.ndarray, filled: np.ndarray,  # written
    marks: np.ndarray, held_out: np.ndarray,  # written
    stand_aside: bool = False,  # as :func:`stream_recurrent_actor`
) -> None:
    """:func:`stream_recurrent_actor` for a feed-forward actor (:func:`step_mlp_actors`'s arithmetic)."""
    widest = mlp_widths.max()
    latent = np.zeros(widest, dtype=np.float32)
    layer_out = np.zeros(widest, dtype=np.float32)
    for j in range(projected.shape[0]):
        actions[j] = -1
        filled[j] = False
        profits[j] = 0.0
        if pending[0] >= 0 and alive[0]:
            profits[j] = _settle(0, pending[0], j + 1, account, held, table, sizing, position_pnl[0])
            filled[j] = True
            if account[0, 0] <= 0.0:
                alive[0] = False
        pending[0] = -1
        if decide[j] and alive[0]:
            _mlp_logits(0, projected[j, 0], tail, mlp, mlp_bias, mlp_widths, mlp_activation, position_pnl, latent,
                        layer_out)
            actions[j] = _arg_max3(latent)
            logits_out[j] = latent[:3]
            pending[0] = STAND_ASIDE_ORDER if stand_aside else actions[j]
        marks[j] = account[0]
        held_out[j] = held[0]


__all__ = ["project_rows", "step_actors", "step_mlp_actors", "stream_mlp_actor", "stream_recurrent_actor"]
