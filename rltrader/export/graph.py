"""A bundle as one ONNX graph: the new bar in, the features, the normalization and the policy inside,
the action, its probabilities and the carried state out. For MetaTrader 5's ``OnnxRun``.

Why by hand (``onnx.helper``) and not ``torch.onnx.export``: the features are not a torch module, the
state must be explicit tensors with static shapes, and every (operator, type) must be one ONNX Runtime
1.14 runs (MetaTrader 5's engine; opset <= 18, :data:`OPSET` is 17): each graph is checked against that
runtime's kernel table (:mod:`rltrader.export.kernels`) before it is written.

The features part is not written here: it is the feature program's graph form
(:func:`feature_nodes`), each primitive emitting its own nodes (:mod:`rltrader.features.primitives`), from
the same declarations the batch pipeline and the live stream run. Inputs and outputs:

* ``bar`` (double ``[1, 7]``): the closed bar's open time in seconds since 1970 (UTC), open, high,
  low, close, tick volume, and spread in price units;
* ``account`` (float ``[1, 2]``): the observation's last two values, the position (-1, 0, +1) and
  the open position's profit in percent of equity (the Expert Advisor reads both from its account);
* ``state`` (double ``[1, S]``): the features' carried state (:mod:`rltrader.features.program`: the
  histories, oldest first, then the exponential averages) and the observation window's earlier rows;
  every value NaN before the first bar (:func:`initial_state`); ``lstm`` (float ``[1, 2 * layers * H]``,
  recurrent only): h, c.

Outputs: ``action`` (int64 ``[1]``: 0 short, 1 flat, 2 long), ``probabilities`` (float ``[1, 3]``),
``features`` (float ``[1, F]``, the normalized features), ``state_out`` and ``lstm_out``. Before
the warm-up is over the features are NaN and so is the decision: the caller feeds history first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rltrader.bundle import Bundle
from rltrader.export.kernels import OPSET, UnsupportedOperator, check_graph
from rltrader.features.definitions import columns_program
from rltrader.features.expressions import BAR_FIELDS
from rltrader.features.primitives import PRIMITIVES
from rltrader.features.program import FeatureProgram

GRAPH_FILE = "model.onnx"
IR_VERSION = 8  # ONNX Runtime 1.14 reads IR <= 8


class GraphError(ValueError):
    """A bundle the graph cannot express, or a graph MetaTrader 5's runtime cannot run."""


class _Graph:
    """A small builder: nodes with generated names, constants; the :class:`~rltrader.features.primitives.GraphEmitter`
    the primitives' graph forms write through."""

    def __init__(self, bar: str = "bar", state: str = "state") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
        self.bar, self.state = bar, state

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def op(self, kind: str, *inputs: str, **attributes: object) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attributes))
        return out

    def array(self, value: object, dtype: type = np.float64) -> str:
        out = self.name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), out))
        return out

    def const(self, value: float) -> str:
        return self.array([[value]])

    def const_ints(self, values: list[int]) -> str:
        return self.array(values, np.int64)

    def columns(self, matrix: str, start: int, stop: int) -> str:
        """``matrix[:, start:stop]``."""
        return self.op("Slice", matrix, self.const_ints([start]), self.const_ints([stop]), self.const_ints([1]))

    def bar_columns(self, start: int, stop: int) -> str:
        return self.columns(self.bar, start, stop)

    def state_columns(self, start: int, stop: int) -> str:
        return self.columns(self.state, start, stop)


def feature_nodes(graph: _Graph, program: FeatureProgram) -> tuple[str, str]:
    """The program's graph form: raw features ``[1, F]`` in program order, and the new features' state."""
    value: dict[int, str] = {}
    slot_value: dict[int, str] = {}
    for instruction in program.instructions:
        emitted = PRIMITIVES[instruction.primitive].graph(graph, [value[a] for a in instruction.args],
                                                          instruction.params, instruction.state)
        value.update(zip(instruction.outputs, emitted, strict=True))
        if instruction.primitive == "ewm":
            slot_value[instruction.state[0]] = emitted[0]
    pieces = []
    for ring in program.rings:  # shifted left, the operand's new value last (oldest first)
        newest = value[ring.source]
        pieces.append(newest if ring.size == 1 else graph.op(
            "Concat", graph.state_columns(ring.offset + 1, ring.offset + ring.size), newest, axis=1))
    pieces += [slot_value[slot] for slot in program.slots]
    raw = graph.op("Concat", *[value[register] for register in program.outputs], axis=1)
    return raw, graph.op("Concat", *pieces, axis=1) if pieces else graph.op("Identity", graph.state)


def _finish(graph: _Graph, name: str, inputs: list[onnx.ValueInfoProto],
            outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    body = helper.make_graph(graph.nodes, name, inputs, outputs, graph.initializers)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rltrader")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    try:
        check_graph(model)
    except UnsupportedOperator as error:
        raise GraphError(str(error)) from None
    return model


def feature_graph(program: FeatureProgram) -> onnx.ModelProto:
    """The features alone as a graph: ``bar`` and ``state`` in, the raw features (double ``[1, F]``, program
    order) and ``state_out`` out. What the bundle's graph holds, for checking a declaration on its own."""
    graph = _Graph()
    raw, new_state = feature_nodes(graph, program)
    graph.nodes.append(helper.make_node("Identity", [raw], ["features"]))
    graph.nodes.append(helper.make_node("Identity", [new_state], ["state_out"]))
    size = program.state_size
    return _finish(graph, "rltrader_features",
                   [helper.make_tensor_value_info("bar", TensorProto.DOUBLE, [1, len(BAR_FIELDS)]),
                    helper.make_tensor_value_info("state", TensorProto.DOUBLE, [1, size])],
                   [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [1, len(program.names)]),
                    helper.make_tensor_value_info("state_out", TensorProto.DOUBLE, [1, size])])


@dataclass(frozen=True)
class StateLayout:
    """The ``state`` vector: the features' state, then the observation window's earlier rows."""

    features: int
    window: int  # (window_size - 1) * features

    @property
    def size(self) -> int:
        return self.features + self.window


def bundle_program(bundle: Bundle) -> FeatureProgram:
    """The compiled features of a bundle's definition."""
    return columns_program(bundle.description.feature_config, bundle.description.feature_columns)


def state_layout(bundle: Bundle) -> StateLayout:
    about = bundle.description
    return StateLayout(bundle_program(bundle).state_size, (about.window_size - 1) * len(about.feature_columns))


def initial_state(bundle: Bundle) -> np.ndarray:
    """The ``state`` input before the first bar: every value NaN (nothing seen, averages unstarted)."""
    return np.full((1, state_layout(bundle).size), np.nan)


def _dense(graph: _Graph, x: str, weight_t: np.ndarray, bias: np.ndarray, activation: int) -> str:
    from rltrader.engine.kernels.activations import IDENTITY, RELU, TANH

    y = graph.op("Add", graph.op("MatMul", x, graph.array(weight_t, np.float32)), graph.array(bias[None], np.float32))
    if activation == TANH:
        return graph.op("Tanh", y)
    if activation == RELU:
        return graph.op("Relu", y)
    if activation != IDENTITY:
        raise GraphError(f"activation code {activation} has no ONNX form here")
    return y


def build_graph(bundle: Bundle) -> onnx.ModelProto:
    """The bundle's graph (see the module docstring), checked with ``onnx.checker`` and against ONNX Runtime
    1.14.1's kernel table.

    :raises GraphError: a policy the graph cannot express, or a node MetaTrader 5's runtime has no kernel for
    """
    from rltrader.engine.model_files import algorithm_class
    from rltrader.engine.policy_arrays import actor_head, lstm_layers

    about = bundle.description
    graph = _Graph()
    layout = state_layout(bundle)
    n_features = len(about.feature_columns)
    program = bundle_program(bundle)
    raw, feature_state = feature_nodes(graph, program)
    order = [program.names.index(name) for name in about.feature_columns]
    selected = graph.op("Gather", raw, graph.array(order, np.int64), axis=1)
    mean = np.array([about.normalization["mean"][c] for c in about.feature_columns])[None]
    std = np.array([about.normalization["std"][c] for c in about.feature_columns])[None]
    clip = float(about.normalization["clip"])
    normalized = graph.op("Clip", graph.op("Div", graph.op("Sub", selected, graph.array(mean)), graph.array(std)),
                          graph.array(-clip), graph.array(clip))
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
        sequence = graph.op("Unsqueeze", observation, graph.const_ints([0]))  # [1 step, 1 batch, inputs]
        h_out, c_out = [], []
        for index, layer in enumerate(layers):
            h0 = graph.op("Unsqueeze", graph.columns("lstm", index * hidden, (index + 1) * hidden),
                          graph.const_ints([0]))
            c_at = (len(layers) + index) * hidden
            c0 = graph.op("Unsqueeze", graph.columns("lstm", c_at, c_at + hidden), graph.const_ints([0]))
            reorder = np.concatenate([np.arange(0, hidden), np.arange(3 * hidden, 4 * hidden),
                                      np.arange(hidden, 2 * hidden), np.arange(2 * hidden, 3 * hidden)])  # i,o,f,c
            w = layer.weight_ih[reorder][None]
            r = layer.weight_hh[reorder][None]
            b = np.concatenate([layer.bias[reorder], np.zeros(4 * hidden, np.float32)])[None]
            y, y_h, y_c = (graph.name("lstm_y"), graph.name("lstm_h"), graph.name("lstm_c"))
            graph.nodes.append(helper.make_node("LSTM", [sequence, graph.array(w, np.float32),
                                                         graph.array(r, np.float32), graph.array(b, np.float32), "",
                                                         h0, c0], [y, y_h, y_c], hidden_size=hidden))
            sequence = graph.op("Squeeze", y, graph.const_ints([1]))  # [1 step, 1 batch, H]
            h_out.append(graph.op("Squeeze", y_h, graph.const_ints([0])))
            c_out.append(graph.op("Squeeze", y_c, graph.const_ints([0])))
        graph.nodes.append(helper.make_node("Concat", [*h_out, *c_out], ["lstm_out"], axis=1))
        outputs_extra.append(helper.make_tensor_value_info("lstm_out", TensorProto.FLOAT,
                                                           [1, 2 * len(layers) * hidden]))
        latent = h_out[-1]
        if getattr(policy, "observation_skip", False):  # the heads read [LSTM output | observation]
            latent = graph.op("Concat", latent, observation, axis=1)
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
    return _finish(graph, f"rltrader_{about.algorithm}_{about.symbol or 'market'}", inputs, outputs)


__all__ = ["BAR_FIELDS", "GRAPH_FILE", "OPSET", "GraphError", "StateLayout", "build_graph", "bundle_program",
           "feature_graph", "feature_nodes", "initial_state", "state_layout"]
