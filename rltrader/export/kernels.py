"""Whether MetaTrader 5's ONNX Runtime can run a graph: every node's (operator, element type) against the kernel
table of ONNX Runtime 1.14.1, checked before a graph is written.

The table, ``onnxruntime_1_14_1_cpu_kernels.json`` next to this file, was read off that runtime's kernel
registry (the source ``docs/OperatorKernels.md`` at ``rel-1.14.0`` is generated from) by
``scripts/probe_ort114_kernels.py``; its header names how. A newer runtime loading a graph says nothing
about 1.14: 1.14 has no double ``Cos`` kernel, which the runtimes of 2026 have.

The check binds each node's type parameters (``T``, ``T1``, ``Tind``...) to the element types shape inference
gives its inputs and outputs, and refuses, in one line, an operator the table does not list or a type it
has no kernel for.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, defs

OPSET = 17
TABLE_PATH = Path(__file__).resolve().parent / "onnxruntime_1_14_1_cpu_kernels.json"
#: ONNX type strings and their element types (those a probe or a graph of ours may hold).
TYPE_NAMES = {"tensor(double)": TensorProto.DOUBLE, "tensor(float)": TensorProto.FLOAT,
              "tensor(float16)": TensorProto.FLOAT16, "tensor(int64)": TensorProto.INT64,
              "tensor(int32)": TensorProto.INT32, "tensor(int8)": TensorProto.INT8, "tensor(uint8)": TensorProto.UINT8,
              "tensor(bool)": TensorProto.BOOL}
ELEMENT_NAMES = {code: name[7:-1] for name, code in TYPE_NAMES.items()}


class UnsupportedOperator(ValueError):
    """A node MetaTrader 5's ONNX Runtime has no kernel for."""


@functools.lru_cache(maxsize=1)
def kernel_table() -> dict[str, Any]:
    """The probed table: ``operators`` -> name -> ``since_version`` and ``types`` per type parameter."""
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def _element_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {value.name: value.type.tensor_type.elem_type
             for value in [*graph.input, *graph.output, *graph.value_info]}
    types |= {tensor.name: tensor.data_type for tensor in graph.initializer}
    return types


def node_bindings(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, dict[str, str]]]:
    """Each node with its type parameters bound to element type names (``{"T": "double"}``)."""
    types = _element_types(model)
    found = []
    for node in model.graph.node:
        schema = defs.get_schema(node.op_type, OPSET, node.domain)
        binding: dict[str, str] = {}
        for formals, actual in ((schema.inputs, node.input), (schema.outputs, node.output)):
            for index, name in enumerate(actual):
                if not name:
                    continue
                formal = formals[min(index, len(formals) - 1)]  # a variadic last parameter repeats
                if formal.type_str.startswith("tensor("):
                    continue
                binding.setdefault(formal.type_str, ELEMENT_NAMES.get(types.get(name, 0), f"type {types.get(name)}"))
        found.append((node, binding))
    return found


def check_graph(model: onnx.ModelProto) -> None:
    """Refuse a graph holding a node ONNX Runtime 1.14.1 cannot run, naming the operator and the type.

    :raises UnsupportedOperator: the first such node
    """
    table = kernel_table()
    runtime = table["runtime"].split(" (")[0]
    for node, binding in node_bindings(model):
        entry = table["operators"].get(node.op_type)
        if node.domain not in ("", "ai.onnx") or entry is None:
            raise UnsupportedOperator(f"operator {node.op_type} is not in the kernel table checked against "
                                      f"{runtime} (MetaTrader 5's); {TABLE_PATH.name} lists the operators checked")
        for parameter, kind in binding.items():
            supported = entry["types"].get(parameter)
            if supported is not None and kind not in supported:
                raise UnsupportedOperator(f"operator {node.op_type} on {kind} has no kernel in {runtime} "
                                          f"(MetaTrader 5's ONNX Runtime runs {node.op_type} on "
                                          f"{', '.join(supported) or 'no type'})")


__all__ = ["ELEMENT_NAMES", "OPSET", "TABLE_PATH", "TYPE_NAMES", "UnsupportedOperator", "check_graph",
           "kernel_table", "node_bindings"]
