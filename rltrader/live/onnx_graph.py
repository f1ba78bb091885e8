"""A bundle as one ONNX graph: the new bar in, the features, the normalization and the policy inside,
the action, its probabilities and the carried state out. For MetaTrader 5's ``OnnxRun``.

Why by hand (``onnx.helper``) and not ``torch.onnx.export``: the features are not a torch module,
the state must be explicit tensors with static shapes, and every operator must be one ONNX Runtime
1.14 runs (MetaTrader 5's engine; opset <= 18, :data:`OPSET` is 17). The graph mirrors the live
stream (:mod:`rltrader.live.stream`) step for step:

* ``bar`` (double ``[1, 7]``): the closed bar's open time in seconds since 1970 (UTC), open, high,
  low, close, tick volume, and spread in price units;
* ``account`` (float ``[1, 2]``): the observation's last two values, the position (-1, 0, +1) and
  the open position's profit in percent of equity (the Expert Advisor reads both from its account);
* ``state`` (double ``[1, S]``): the features' carried state (bars seen, previous close, the six
  exponential averages, the rings of log closes, closes and log volumes, oldest first) and the
  observation window's earlier rows; ``lstm`` (float ``[1, 2 * layers * H]``, recurrent only): h, c.

Outputs: ``action`` (int64 ``[1]``: 0 short, 1 flat, 2 long), ``probabilities`` (float ``[1, 3]``),
``features`` (float ``[1, F]``, the normalized features), ``state_out`` and ``lstm_out``. Before
the warm-up is over the features are NaN and so is the decision: the caller feeds history first.

Features are computed in double as the stream does, with two differences the parity check measures:
ONNX sums a window with ``ReduceSum`` (not strictly oldest first) and has no ``log1p`` (the volume
uses ``log(1 + v)``); both move a feature by ~1e-16 relative, which float32 rounding hides but for
a rare near-tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rltrader.live.bundle import Bundle
from rltrader.live.features import FeatureProgram

OPSET = 17
BAR_FIELDS = ("time", "open", "high", "low", "close", "tick_volume", "spread")
#: The operators a graph may hold: common ones, each defined at opset <= 17 and run by ONNX Runtime's CPU
#: kernels in double and float. An export using any other is refused, naming it; adding one is a decision.
SUPPORTED_OPERATORS = frozenset({
    "Abs", "Add", "ArgMax", "Cast", "Clip", "Concat", "Cos", "Div", "Equal", "Floor", "Gather", "Greater",
    "GreaterOrEqual", "Identity", "IsNaN", "LSTM", "Less", "Log", "MatMul", "Max", "Mod", "Mul", "Neg", "Or",
    "ReduceSum", "Relu", "Sin", "Slice", "Softmax", "Sqrt", "Squeeze", "Sub", "Tanh", "Unsqueeze", "Where"})
SECONDS_PER_DAY = 86_400.0


class GraphError(ValueError):
    """A bundle the graph cannot express."""


class _Graph:
    """A small builder: nodes with generated names, constants, and the usual arithmetic."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def op(self, kind: str, *inputs: str, **attributes: object) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attributes))
        return out

    def const(self, value: object, dtype: type = np.float64) -> str:
        out = self.name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), out))
        return out

    def columns(self, matrix: str, start: int, stop: int) -> str:
        """``matrix[:, start:stop]``."""
        return self.op("Slice", matrix, self.const([start], np.int64), self.const([stop], np.int64),
                       self.const([1], np.int64))

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def where(self, condition: str, a: str, b: str) -> str:
        return self.op("Where", condition, a, b)

    def mean_std(self, values: str, count: int) -> tuple[str, str]:
        """Mean and population standard deviation across ``values``' columns (two passes)."""
        axes = self.const([1], np.int64)
        mean = self.div(self.op("ReduceSum", values, axes, keepdims=1), self.const([[float(count)]]))
        deviation = self.sub(values, mean)
        squares = self.op("ReduceSum", self.mul(deviation, deviation), axes, keepdims=1)
        return mean, self.op("Sqrt", self.div(squares, self.const([[float(count)]])))


@dataclass(frozen=True)
class StateLayout:
    """Where each part of the features' state sits in the ``state`` vector."""

    scalars: int  # count, previous close, six averages
    log_closes: int
    closes: int
    log_volumes: int
    window: int  # (window_size - 1) * features

    @property
    def size(self) -> int:
        return self.scalars + self.log_closes + self.closes + self.log_volumes + self.window


def state_layout(bundle: Bundle) -> StateLayout:
    about = bundle.description
    program = _program(bundle)
    return StateLayout(8, *program.ring_sizes, (about.window_size - 1) * len(about.feature_columns))


def _program(bundle: Bundle) -> FeatureProgram:
    columns = bundle.description.feature_columns
    return FeatureProgram.of(bundle.description.feature_config, has_volume="volume_z" in columns,
                             has_spread="spread_rel" in columns)


def initial_state(bundle: Bundle) -> np.ndarray:
    """The ``state`` input before the first bar: nothing seen, every average unstarted (NaN)."""
    layout = state_layout(bundle)
    state = np.zeros((1, layout.size))
    state[0, 1:8] = np.nan
    state[0, layout.scalars + layout.log_closes + layout.closes + layout.log_volumes:] = np.nan
    return state


def _ema(graph: _Graph, state: str, slot: int, value: str, alpha: float) -> str:
    """pandas' ``ewm(adjust=False)`` step, as :func:`rltrader.live.features._ewm`."""
    weighted = graph.columns(state, slot, slot + 1)
    old = 1.0 - alpha
    new = alpha if old != alpha else 1.0 - old
    update = graph.div(graph.add(graph.mul(graph.const([[old]]), weighted), graph.mul(graph.const([[new]]), value)),
                       graph.const([[old + new]]))
    keep = graph.op("Or", graph.op("IsNaN", value), graph.op("Equal", weighted, value))
    return graph.where(graph.op("IsNaN", weighted), value, graph.where(keep, weighted, update))


def _ring(graph: _Graph, state: str, start: int, size: int, value: str) -> str:
    """The ring's values after ``value`` arrives, oldest first: ``ring[1:] + [value]``."""
    if size == 1:
        return value
    return graph.op("Concat", graph.columns(state, start + 1, start + size), value, axis=1)


def _valid(graph: _Graph, count: str, needed: int, value: str) -> str:
    """``value`` once ``needed`` bars came before this one, NaN until then (as the batch pipeline)."""
    return graph.where(graph.op("GreaterOrEqual", count, graph.const([[float(needed)]])), value,
                       graph.const([[np.nan]]))


def _features(graph: _Graph, bundle: Bundle, bar: str, state: str) -> tuple[str, str]:
    """Raw features ``[1, all]`` in :class:`FeatureProgram` order, and the new features' state (without
    the window rows)."""
    program = _program(bundle)
    layout = state_layout(bundle)
    (atr, rsi, macd_on, bb_window, volume_window, spread_on, time_on, weekday_on, harmonics,
     signed_volume) = (int(v) for v in program.ints)
    alphas = program.floats
    field = {name: graph.columns(bar, i, i + 1) for i, name in enumerate(BAR_FIELDS)}
    close, high, low = field["close"], field["high"], field["low"]
    count = graph.columns(state, 0, 1)
    previous = graph.columns(state, 1, 2)
    log_close = graph.op("Log", close)
    lc_at = layout.scalars
    log_closes = _ring(graph, state, lc_at, layout.log_closes, log_close)
    size = layout.log_closes
    out: list[str] = []
    for h in program.horizons.tolist():
        out.append(_valid(graph, count, h, graph.sub(log_close, graph.columns(log_closes, size - 1 - h, size - h))))
    for w in program.vol_windows.tolist():
        diffs = graph.sub(graph.columns(log_closes, size - w, size), graph.columns(log_closes, size - w - 1, size - 1))
        out.append(_valid(graph, count, w, graph.mean_std(diffs, w)[1]))
    averages = [graph.columns(state, slot, slot + 1) for slot in range(2, 8)]
    if atr:
        spread_hl = graph.sub(high, low)
        widest = graph.op("Max", spread_hl, graph.op("Abs", graph.sub(high, previous)),
                          graph.op("Abs", graph.sub(low, previous)))
        true_range = graph.where(graph.op("IsNaN", previous), spread_hl, widest)
        averages[0] = _ema(graph, state, 2, true_range, float(alphas[0]))
        out.append(graph.div(averages[0], close))
    if rsi:
        change = graph.sub(close, previous)
        missing = graph.op("IsNaN", change)
        zero = graph.const([[0.0]])
        gain_value = graph.where(graph.op("Or", graph.op("Greater", change, zero), missing), change, zero)
        loss_value = graph.where(graph.op("Or", graph.op("Less", change, zero), missing), graph.op("Neg", change),
                                 graph.const([[-0.0]]))
        averages[1] = _ema(graph, state, 3, gain_value, float(alphas[1]))
        averages[2] = _ema(graph, state, 4, loss_value, float(alphas[1]))
        total = graph.add(averages[1], averages[2])
        ratio = graph.where(graph.op("Greater", total, zero), graph.div(averages[1], total), graph.const([[0.5]]))
        out.append(graph.mul(graph.sub(ratio, graph.const([[0.5]])), graph.const([[2.0]])))
    if macd_on:
        averages[3] = _ema(graph, state, 5, close, float(alphas[2]))
        averages[4] = _ema(graph, state, 6, close, float(alphas[3]))
        line = graph.sub(averages[3], averages[4])
        averages[5] = _ema(graph, state, 7, line, float(alphas[4]))
        out += [graph.div(line, close), graph.div(averages[5], close),
                graph.div(graph.sub(line, averages[5]), close)]
    closes_at = lc_at + layout.log_closes
    closes = _ring(graph, state, closes_at, layout.closes, close)
    if bb_window:
        mean, std = graph.mean_std(closes, bb_window)
        width = graph.mul(graph.const([[float(alphas[5])]]), std)
        position = graph.where(graph.op("Greater", width, graph.const([[0.0]])),
                               graph.div(graph.sub(close, mean), width), graph.const([[0.0]]))
        out.append(_valid(graph, count, bb_window - 1, position))
    volumes_at = closes_at + layout.closes
    log_volume = graph.op("Log", graph.add(graph.const([[1.0]]), field["tick_volume"]))
    log_volumes = _ring(graph, state, volumes_at, layout.log_volumes, log_volume)
    if volume_window:
        mean, std = graph.mean_std(log_volumes, volume_window)
        z = graph.where(graph.op("Greater", std, graph.const([[0.0]])),
                        graph.div(graph.sub(log_volume, mean), std), graph.const([[0.0]]))
        out.append(_valid(graph, count, volume_window - 1, z))
        if signed_volume:  # sign(close - previous) * z, NaN where either is (no Sign among MT5's operators)
            change = graph.sub(close, previous)
            zero = graph.const([[0.0]])
            sign = graph.where(graph.op("Greater", change, zero), graph.const([[1.0]]),
                               graph.where(graph.op("Less", change, zero), graph.const([[-1.0]]), zero))
            sign = graph.where(graph.op("IsNaN", change), graph.const([[np.nan]]), sign)
            out.append(graph.mul(sign, out[-1]))
    if spread_on:
        out.append(graph.div(field["spread"], close))
    seconds = graph.op("Mod", field["time"], graph.const([[SECONDS_PER_DAY]]), fmod=1)
    phase = graph.div(seconds, graph.const([[SECONDS_PER_DAY]]))
    def harmonic_pairs(cycle_phase: str) -> list[str]:
        """sin and cos of 2 pi * (k * phase) for k = 1 .. harmonics, as indicators.cyclical."""
        pairs = []
        for k in range(1, harmonics + 1):
            turned = cycle_phase if k == 1 else graph.mul(graph.const([[float(k)]]), cycle_phase)
            angle = graph.mul(graph.const([[2.0 * math.pi]]), turned)
            pairs += [graph.op("Sin", angle), graph.op("Cos", angle)]
        return pairs

    if time_on:
        out += harmonic_pairs(phase)
    if weekday_on:
        day = graph.op("Floor", graph.div(graph.sub(field["time"], seconds), graph.const([[SECONDS_PER_DAY]])))
        weekday = graph.op("Mod", graph.add(day, graph.const([[3.0]])), graph.const([[7.0]]), fmod=1)
        out += harmonic_pairs(graph.div(graph.add(weekday, phase), graph.const([[7.0]])))
    new_count = graph.add(count, graph.const([[1.0]]))
    new_state = graph.op("Concat", new_count, close, *averages, log_closes, closes, log_volumes, axis=1)
    if len(out) != len(program.names):
        raise GraphError(f"the graph computes {len(out)} features, the definition {len(program.names)}")
    return graph.op("Concat", *out, axis=1), new_state


def _dense(graph: _Graph, x: str, weight_t: np.ndarray, bias: np.ndarray, activation: int) -> str:
    from rltrader.engine.kernels.activations import IDENTITY, RELU, TANH

    y = graph.add(graph.op("MatMul", x, graph.const(weight_t, np.float32)), graph.const(bias[None], np.float32))
    if activation == TANH:
        return graph.op("Tanh", y)
    if activation == RELU:
        return graph.op("Relu", y)
    if activation != IDENTITY:
        raise GraphError(f"activation code {activation} has no ONNX form here")
    return y


def build_graph(bundle: Bundle) -> onnx.ModelProto:
    """The bundle's graph (see the module docstring); checked with ``onnx.checker``."""
    from rltrader.engine.model_files import algorithm_class
    from rltrader.engine.policy_arrays import actor_head, lstm_layers

    about = bundle.description
    graph = _Graph()
    layout = state_layout(bundle)
    n_features = len(about.feature_columns)
    raw, feature_state = _features(graph, bundle, "bar", "state")
    program = _program(bundle)
    order = [program.names.index(name) for name in about.feature_columns]
    selected = graph.op("Gather", raw, graph.const(order, np.int64), axis=1)
    mean = np.array([about.normalization["mean"][c] for c in about.feature_columns])[None]
    std = np.array([about.normalization["std"][c] for c in about.feature_columns])[None]
    clip = float(about.normalization["clip"])
    normalized = graph.op("Clip", graph.div(graph.sub(selected, graph.const(mean)), graph.const(std)),
                          graph.const(-clip), graph.const(clip))
    features = graph.op("Cast", normalized, to=TensorProto.FLOAT)
    window_at = layout.size - layout.window
    if layout.window:
        earlier = graph.op("Cast", graph.columns("state", window_at, layout.size), to=TensorProto.FLOAT)
        window = graph.op("Concat", earlier, features, axis=1)
        kept = graph.op("Cast", graph.columns(window, n_features, n_features * about.window_size),
                        to=TensorProto.DOUBLE)
        state_out = graph.op("Concat", feature_state, kept, axis=1)
    else:
        window, state_out = features, feature_state
    observation = graph.op("Concat", window, "account", axis=1)
    model = algorithm_class(about.algorithm).load(str(bundle.policy_path), device="cpu")
    policy = model.policy
    inputs = [helper.make_tensor_value_info("bar", TensorProto.DOUBLE, [1, len(BAR_FIELDS)]),
              helper.make_tensor_value_info("account", TensorProto.FLOAT, [1, 2]),
              helper.make_tensor_value_info("state", TensorProto.DOUBLE, [1, layout.size])]
    outputs_extra: list[onnx.ValueInfoProto] = []
    latent = observation
    head = actor_head(policy)
    if about.algorithm == "recurrent":
        layers = lstm_layers(policy.lstm_actor)
        hidden = policy.lstm_actor.hidden_size
        inputs.append(helper.make_tensor_value_info("lstm", TensorProto.FLOAT, [1, 2 * len(layers) * hidden]))
        sequence = graph.op("Unsqueeze", observation, graph.const([0], np.int64))  # [1 step, 1 batch, inputs]
        h_out, c_out = [], []
        for index, layer in enumerate(layers):
            h0 = graph.op("Unsqueeze", graph.columns("lstm", index * hidden, (index + 1) * hidden),
                          graph.const([0], np.int64))
            c_at = (len(layers) + index) * hidden
            c0 = graph.op("Unsqueeze", graph.columns("lstm", c_at, c_at + hidden), graph.const([0], np.int64))
            reorder = np.concatenate([np.arange(0, hidden), np.arange(3 * hidden, 4 * hidden),
                                      np.arange(hidden, 2 * hidden), np.arange(2 * hidden, 3 * hidden)])  # i,o,f,c
            w = layer.weight_ih[reorder][None]
            r = layer.weight_hh[reorder][None]
            b = np.concatenate([layer.bias[reorder], np.zeros(4 * hidden, np.float32)])[None]
            y, y_h, y_c = (graph.name("lstm_y"), graph.name("lstm_h"), graph.name("lstm_c"))
            graph.nodes.append(helper.make_node("LSTM", [sequence, graph.const(w, np.float32),
                                                         graph.const(r, np.float32), graph.const(b, np.float32), "",
                                                         h0, c0], [y, y_h, y_c], hidden_size=hidden))
            sequence = graph.op("Squeeze", y, graph.const([1], np.int64))  # [1 step, 1 batch, H]
            h_out.append(graph.op("Squeeze", y_h, graph.const([0], np.int64)))
            c_out.append(graph.op("Squeeze", y_c, graph.const([0], np.int64)))
        graph.nodes.append(helper.make_node("Concat", [*h_out, *c_out], ["lstm_out"], axis=1))
        outputs_extra.append(helper.make_tensor_value_info("lstm_out", TensorProto.FLOAT,
                                                           [1, 2 * len(layers) * hidden]))
        latent = h_out[-1]
    for layer in head:
        latent = _dense(graph, latent, layer.weight_t, layer.bias, layer.activation)
    graph.nodes.append(helper.make_node("Softmax", [latent], ["probabilities"], axis=1))
    graph.nodes.append(helper.make_node("ArgMax", [latent], ["action_2d"], axis=1, keepdims=0))
    graph.nodes.append(helper.make_node("Identity", [features], ["features"]))
    graph.nodes.append(helper.make_node("Identity", [state_out], ["state_out"]))
    graph.nodes.append(helper.make_node("Identity", ["action_2d"], ["action"]))
    outputs = [helper.make_tensor_value_info("action", TensorProto.INT64, [1]),
               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3]),
               helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, n_features]),
               helper.make_tensor_value_info("state_out", TensorProto.DOUBLE, [1, layout.size]), *outputs_extra]
    body = helper.make_graph(graph.nodes, f"rltrader_{about.algorithm}_{about.symbol or 'market'}", inputs, outputs,
                             graph.initializers)
    model_proto = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)],
                                    producer_name="rltrader")
    model_proto.ir_version = 8  # ONNX Runtime 1.14 reads IR <= 8
    check_operators(model_proto)
    onnx.checker.check_model(model_proto, full_check=True)
    return model_proto


def check_operators(model: onnx.ModelProto) -> None:
    """Refuse a graph holding an operator outside :data:`SUPPORTED_OPERATORS`, naming it."""
    outside = sorted({node.op_type for node in model.graph.node} - SUPPORTED_OPERATORS)
    if outside:
        raise GraphError(f"operator {', '.join(outside)} is outside the set MetaTrader 5's ONNX Runtime is known "
                         "to run here (rltrader.live.onnx_graph.SUPPORTED_OPERATORS)")


__all__ = ["BAR_FIELDS", "OPSET", "SUPPORTED_OPERATORS", "GraphError", "StateLayout", "build_graph",
           "check_operators", "initial_state", "state_layout"]
