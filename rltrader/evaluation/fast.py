"""The fast evaluator: a recurrent policy's actor run in numpy, several models at once.

Why it is fast, and still exact:

* the observation is ``[feature window, position, unrealized PnL]``; only the last two
  depend on earlier actions. The LSTM's input projection of the feature windows is
  therefore computed for thousands of bars in one matrix product, and each step only adds
  the recurrent term, with the position and PnL folded into it as two extra columns;
* the gates are reordered so one ``tanh`` serves all four (sigmoid(x) = (tanh(x/2)+1)/2,
  with the halving folded into the weights: multiplying by 0.5 is exact in floating point);
* there is no per-step SB3 machinery (tensor conversion, distributions, state tuples);
  the account is advanced with the same table lookups as ``TradingEnv.step``.

The actions are the deterministic ones (arg-max of the logits). Floating-point sums run in
a different order than torch's, so logits differ in the last bits; an action could only
change where two logits tie to about 1e-6, and ``tests/test_evaluation.py`` and
``bench/evaluation.py`` check on trained models that the actions are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.config import EnvConfig
from rltrader.env import ACTION_SIGNS, FLAT, MarketData, evaluation_config
from rltrader.env.trading_env import EpisodeBounds

#: Bars whose input projection is computed per matrix product (bounds memory at ~4 MB x K).
CHUNK_BARS = 1024


class UnsupportedPolicyError(ValueError):
    """The policy has a part the fast evaluator does not implement; use the reference one."""


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _activation(module: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    from torch import nn

    if isinstance(module, nn.Tanh):
        return _tanh
    if isinstance(module, nn.ReLU):
        return _relu
    if isinstance(module, nn.Identity):
        return None
    raise UnsupportedPolicyError(f"activation {type(module).__name__} is not supported by the fast evaluator")


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _gate_order(weights: np.ndarray, hidden: int) -> np.ndarray:
    """torch's gate rows [i, f, g, o] -> [i/2, f/2, o/2, g]: one tanh then yields all four."""
    i, f, g, o = (weights[k * hidden : (k + 1) * hidden] for k in range(4))
    return np.concatenate((0.5 * i, 0.5 * f, 0.5 * o, g))


@dataclass(frozen=True)
class ActorWeights:
    """The actor path of one ``RecurrentActorCriticPolicy`` as float32 arrays."""

    hidden: int
    window_in: np.ndarray  # (4H, window values): layer-0 input weights of the feature window
    bias0: np.ndarray  # (4H,)
    recurrent0: np.ndarray  # (4H, H + 2): [W_hh | position column | PnL column]
    upper: tuple[tuple[np.ndarray, np.ndarray], ...]  # layers >= 1: ([W_ih | W_hh], bias)
    mlp: tuple[tuple[np.ndarray, np.ndarray, Callable | None], ...]
    action: tuple[np.ndarray, np.ndarray]
    signature: tuple

    @classmethod
    def from_model(cls, model: Any, observation_size: int) -> ActorWeights:
        from stable_baselines3.common.torch_layers import FlattenExtractor
        from torch import nn

        policy = model.policy
        lstm = getattr(policy, "lstm_actor", None)
        if not isinstance(lstm, nn.LSTM):
            raise UnsupportedPolicyError("the fast evaluator needs a RecurrentPPO policy with an LSTM actor")
        extractor = policy.features_extractor if policy.share_features_extractor else policy.pi_features_extractor
        if not isinstance(extractor, FlattenExtractor):
            raise UnsupportedPolicyError(f"features extractor {type(extractor).__name__} is not supported")
        if lstm.input_size != observation_size or lstm.bidirectional or lstm.proj_size:
            raise UnsupportedPolicyError("the LSTM does not read this environment's observation")
        hidden = lstm.hidden_size
        weight_ih = _gate_order(_numpy(lstm.weight_ih_l0), hidden)
        bias = _gate_order(_numpy(lstm.bias_ih_l0) + _numpy(lstm.bias_hh_l0), hidden)
        recurrent = np.concatenate((_gate_order(_numpy(lstm.weight_hh_l0), hidden), weight_ih[:, -2:]), axis=1)
        upper = []
        for layer in range(1, lstm.num_layers):
            w_ih = _gate_order(_numpy(getattr(lstm, f"weight_ih_l{layer}")), hidden)
            w_hh = _gate_order(_numpy(getattr(lstm, f"weight_hh_l{layer}")), hidden)
            b = _numpy(getattr(lstm, f"bias_ih_l{layer}")) + _numpy(getattr(lstm, f"bias_hh_l{layer}"))
            upper.append((np.ascontiguousarray(np.concatenate((w_ih, w_hh), axis=1)), _gate_order(b, hidden)))
        mlp: list[tuple[np.ndarray, np.ndarray, Callable | None]] = []
        for module in policy.mlp_extractor.policy_net:
            if isinstance(module, nn.Linear):
                mlp.append((_numpy(module.weight), _numpy(module.bias), None))
            elif mlp and mlp[-1][2] is None:
                mlp[-1] = (mlp[-1][0], mlp[-1][1], _activation(module))
            else:
                raise UnsupportedPolicyError(f"policy_net layer {type(module).__name__} is not supported")
        action_net = policy.action_net
        if not isinstance(action_net, nn.Linear) or action_net.out_features != len(ACTION_SIGNS):
            raise UnsupportedPolicyError("the action net must be one linear layer onto 3 logits")
        signature = (hidden, lstm.num_layers, tuple((w.shape, getattr(a, '__name__', None)) for w, _, a in mlp))
        return cls(
            hidden=hidden, window_in=np.ascontiguousarray(weight_ih[:, :-2]), bias0=bias,
            recurrent0=np.ascontiguousarray(recurrent), upper=tuple(upper), mlp=tuple(mlp),
            action=(_numpy(action_net.weight), _numpy(action_net.bias)), signature=signature,
        )


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One model: the array itself (plain matrix-vector products); several: a batch axis."""
    return arrays[0] if len(arrays) == 1 else np.ascontiguousarray(np.stack(arrays))


def _first_argmax(logits: np.ndarray) -> int:
    """Arg-max of three logits, the first on ties (as torch's), without a numpy reduction."""
    short, flat, long = logits.tolist()
    if short >= flat and short >= long:
        return 0
    return 1 if flat >= long else 2


def _dot_into(matrix: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    np.dot(matrix, vector, out=out)


def _matmul_into(matrices: np.ndarray, vectors: np.ndarray, out: np.ndarray) -> None:
    np.matmul(matrices, vectors[..., None], out=out[..., None])


def fast_actions(
    models: Sequence[Any], market: MarketData, split: str, config: EnvConfig
) -> list[np.ndarray]:
    """Deterministic actions of each model over the whole ``split`` (one array per model).

    All models must share one architecture (they are stepped as a batch); the result
    matches :func:`~rltrader.evaluation.reference.reference_actions` model by model.
    """
    config = evaluation_config(config)
    bounds = EpisodeBounds.of(market, split, config)
    size = config.window_size * market.n_features
    actors = [ActorWeights.from_model(model, size + 2) for model in models]
    if len({actor.signature for actor in actors}) > 1:
        raise UnsupportedPolicyError("models evaluated in one batch must share their architecture")
    n_models, hidden = len(actors), actors[0].hidden
    window_in = [actor.window_in.T for actor in actors]
    bias0 = [actor.bias0 for actor in actors]
    recurrent0 = _stack([actor.recurrent0 for actor in actors])
    upper = [(_stack([a.upper[k][0] for a in actors]), _stack([a.upper[k][1] for a in actors]))
             for k in range(len(actors[0].upper))]
    mlp = [(_stack([a.mlp[k][0] for a in actors]), _stack([a.mlp[k][1] for a in actors]), actors[0].mlp[k][2])
           for k in range(len(actors[0].mlp))]
    action_w, action_b = _stack([a.action[0] for a in actors]), _stack([a.action[1] for a in actors])

    shape = (hidden,) if n_models == 1 else (n_models, hidden)
    layer0 = np.zeros(shape[:-1] + (hidden + 2,), dtype=np.float32)  # [h, position, PnL]
    cell0 = np.zeros(shape, dtype=np.float32)
    upper_state = [(np.zeros(shape[:-1] + (2 * hidden,), dtype=np.float32), np.zeros(shape, dtype=np.float32))
                   for _ in upper]

    windows = market.windows(config.window_size)
    step_pnl, opens, closes = market.step_pnl.reshape(-1), market.open, market.close
    signs = [float(s) for s in ACTION_SIGNS]
    units_pct = [100.0 * s * market.position_size for s in ACTION_SIGNS]
    held = [FLAT] * n_models
    equity = [config.initial_balance] * n_models
    entry = [0.0] * n_models
    alive = [True] * n_models
    taken: list[list[int]] = [[] for _ in range(n_models)]
    h3 = 3 * hidden
    offset = config.window_size - 1

    matvec = _dot_into if n_models == 1 else _matmul_into
    lead = shape[:-1]
    gates = np.empty(lead + (4 * hidden,), dtype=np.float32)
    sigmoid, forget = gates[..., :h3], gates[..., hidden : 2 * hidden]
    in_gate, out_gate, candidate = gates[..., :hidden], gates[..., 2 * hidden : h3], gates[..., h3:]
    scratch = np.empty(shape, dtype=np.float32)
    hidden0 = layer0[..., :hidden]
    mlp_out = [np.empty(lead + (weight.shape[-2],), dtype=np.float32) for weight, _, _ in mlp]
    logits = np.empty(lead + (action_w.shape[-2],), dtype=np.float32)

    def lstm_cell(cell: np.ndarray, out: np.ndarray) -> None:
        """gates (pre-activation, sigmoid rows halved) -> new cell in place, new hidden into ``out``."""
        np.tanh(gates, out=gates)
        np.multiply(sigmoid, 0.5, out=sigmoid)
        np.add(sigmoid, 0.5, out=sigmoid)
        cell *= forget
        np.multiply(in_gate, candidate, out=scratch)
        cell += scratch
        np.tanh(cell, out=scratch)
        np.multiply(out_gate, scratch, out=out)

    def step_chunk(chunk_start: int, pre: np.ndarray) -> bool:
        """Step every bar of one chunk; False once every account is bankrupt."""
        for j in range(len(pre)):
            matvec(recurrent0, layer0, gates)
            np.add(gates, pre[j], out=gates)
            lstm_cell(cell0, hidden0)
            latent = hidden0
            for (weight, bias), (state, cell) in zip(upper, upper_state):
                state[..., :hidden] = latent
                matvec(weight, state, gates)
                np.add(gates, bias, out=gates)
                lstm_cell(cell, state[..., hidden:])
                latent = state[..., hidden:]
            for (weight, bias, activation), out in zip(mlp, mlp_out):
                matvec(weight, latent, out)
                out += bias
                latent = activation(out) if activation is not None else out
            matvec(action_w, latent, logits)
            np.add(logits, action_b, out=logits)
            chosen = [_first_argmax(logits)] if n_models == 1 else logits.argmax(axis=-1).tolist()
            t = chunk_start + j + 1
            for k in range(n_models):
                if not alive[k]:
                    continue
                action = chosen[k]
                taken[k].append(action)
                equity[k] += step_pnl.item(t * 9 + held[k] * 3 + action)
                if action != held[k]:
                    entry[k] = opens.item(t)
                held[k] = action
                pnl_pct = (units_pct[action] * (closes.item(t) - entry[k])) / equity[k] if equity[k] else 0.0
                position = layer0 if n_models == 1 else layer0[k]
                position[hidden] = signs[action]
                position[hidden + 1] = pnl_pct
                if equity[k] <= 0.0:  # bankrupt: the evaluation episode ends, as in TradingEnv
                    alive[k] = False
            if not any(alive):
                return False
        return True

    def input_projection(chunk_start: int) -> np.ndarray:
        """Layer-0 input of every bar in a chunk: one matrix product per model."""
        rows = windows[chunk_start - offset : min(chunk_start + CHUNK_BARS, bounds.last) - offset]
        pre = np.stack([rows @ w + b for w, b in zip(window_in, bias0)], axis=1)
        return pre[:, 0] if n_models == 1 else pre

    # The next chunk's projection runs in a thread (BLAS releases the GIL) while this
    # chunk is stepped: on two cores the matrix product is then almost free.
    chunk_starts = list(range(bounds.first, bounds.last, CHUNK_BARS))
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(input_projection, chunk_starts[0])
        for index, chunk_start in enumerate(chunk_starts):
            pre = upcoming.result()
            if index + 1 < len(chunk_starts):
                upcoming = pool.submit(input_projection, chunk_starts[index + 1])
            if not step_chunk(chunk_start, pre):
                break
    return [np.asarray(row, dtype=np.int64) for row in taken]


__all__ = ["ActorWeights", "UnsupportedPolicyError", "fast_actions"]
