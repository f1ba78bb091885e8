"""Read ONNX Runtime 1.14.1's CPU kernel table off the runtime itself, for the operators rltrader's graphs use.

MetaTrader 5 runs ONNX models with ONNX Runtime 1.14; MQL5's documentation sends model authors to that
release's ``docs/OperatorKernels.md`` (the table the runtime's kernel registry generates). This script
asks the registry directly: for every operator below, at the opset the export writes (17), it builds one
one-node graph per type a type parameter may take (the others held at a type known to work) and creates a
session of each in ONNX Runtime 1.14.1 with graph optimizations off. A session that opens means a CPU
kernel exists; ``NOT_IMPLEMENTED : Could not find an implementation for ...`` means none. Any other
refusal stops the script (the probe graph itself would be wrong).

The result is ``rltrader/export/onnxruntime_1_14_1_cpu_kernels.json``, which every export is checked
against before it is written (:mod:`rltrader.export.kernels`).

Usage: .venv/bin/python scripts/probe_ort114_kernels.py  (builds the 1.14.1 environment first if needed)
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import onnx
from onnx import defs, helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rltrader.export.kernels import OPSET, TABLE_PATH, TYPE_NAMES  # noqa: E402
from rltrader.export.runtime114 import VERSION, run_runner  # noqa: E402

#: Every operator a graph of rltrader's may hold, and a few neighbours a future primitive may want.
OPERATORS = ("Abs", "Add", "And", "ArgMax", "Cast", "Clip", "Concat", "Cos", "Div", "Equal", "Exp", "Floor", "Gather",
             "Gemm", "Greater", "GreaterOrEqual", "Identity", "IsNaN", "LSTM", "Less", "LessOrEqual", "Log", "MatMul",
             "Max", "Min", "Mod", "Mul", "Neg", "Not", "Or", "ReduceSum", "Relu", "Reshape", "Sigmoid", "Sign", "Sin",
             "Slice", "Softmax", "Sqrt", "Squeeze", "Sub", "Tanh", "Unsqueeze", "Where")
PREFERRED = ("tensor(float)", "tensor(int64)", "tensor(bool)", "tensor(int32)")


def _attributes(op: str, binding: dict[str, str]) -> dict[str, object]:
    if op == "Cast":
        return {"to": TYPE_NAMES[binding["T2"]]}
    if op == "LSTM":
        return {"hidden_size": 2}
    if op == "Mod" and binding["T"] in ("tensor(float)", "tensor(double)", "tensor(float16)"):
        return {"fmod": 1}
    if op == "Concat":
        return {"axis": 0}
    return {}


def probe_graph(op: str, binding: dict[str, str]) -> onnx.ModelProto:
    """A one-node graph of ``op`` whose type parameters take ``binding``'s types."""
    schema = defs.get_schema(op, OPSET)
    inputs, names = [], []
    for index, formal in enumerate(schema.inputs[: max(schema.min_input, 1)]):
        kind = binding.get(formal.type_str, formal.type_str)
        name = f"in{index}"
        inputs.append(helper.make_tensor_value_info(name, TYPE_NAMES[kind], None))
        names.append(name)
    formal_output = schema.outputs[0]
    out_kind = binding.get(formal_output.type_str, formal_output.type_str)
    outputs = [helper.make_tensor_value_info("out", TYPE_NAMES[out_kind], None)]
    node = helper.make_node(op, names, ["out"], **_attributes(op, binding))
    graph = helper.make_graph([node], f"probe_{op}", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def bindings(op: str) -> list[tuple[str, str, dict[str, str]]]:
    """(type parameter, type, full binding) for each type each parameter may take, the others at a default."""
    schema = defs.get_schema(op, OPSET)
    allowed = {c.type_param_str: [t for t in c.allowed_type_strs if t in TYPE_NAMES] for c in schema.type_constraints}
    default = {name: next((t for t in PREFERRED if t in types), types[0]) for name, types in allowed.items()}
    if op == "IsNaN":
        default["T2"] = "tensor(bool)"
    found = []
    for name, types in allowed.items():
        for kind in types:
            found.append((name, kind, {**default, name: kind}))
    return found


def main() -> None:
    cases: dict[str, tuple[str, str, str]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for op in OPERATORS:
            for parameter, kind, binding in bindings(op):
                file = f"{op}__{parameter}__{kind[7:-1]}.onnx"
                onnx.save(probe_graph(op, binding), str(Path(directory) / file))
                cases[file] = (op, parameter, kind)
        answer = run_runner("probe", directory)
    table: dict[str, dict] = {}
    for file, outcome in answer["probe"].items():
        op, parameter, kind = cases[file]
        entry = table.setdefault(op, {"since_version": defs.get_schema(op, OPSET).since_version, "types": {}})
        supported = entry["types"].setdefault(parameter, [])
        if outcome == "ok":
            supported.append(kind[7:-1])
        elif not any(known in outcome for known in ("NOT_IMPLEMENTED", "Could not find an implementation", "crashed")):
            sys.exit(f"{file}: unexpected refusal (fix the probe graph): {outcome}")
    document = {
        "runtime": f"onnxruntime {answer['onnxruntime']} (PyPI wheel, CPUExecutionProvider), Python {answer['python']}",
        "source": "read off the runtime's kernel registry by scripts/probe_ort114_kernels.py: one one-node graph per "
                  "(operator, type parameter, type) at the opset below, a session created with graph optimizations "
                  "off; a kernel exists where the session opens. The registry is what ONNX Runtime's "
                  "docs/OperatorKernels.md is generated from (rel-1.14.0 for this runtime; MQL5's ONNX page sends "
                  "model authors there). A float16 pair may open through the casts the runtime inserts around a "
                  "float16 node it has no kernel for; rltrader's graphs hold double, float, int64 and bool only.",
        "opset": OPSET, "probed_on": datetime.now(UTC).date().isoformat(),
        "operators": {op: table[op] for op in sorted(table)},
    }
    if answer["onnxruntime"] != VERSION:
        sys.exit(f"probed {answer['onnxruntime']}, expected {VERSION}")
    TABLE_PATH.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{TABLE_PATH.relative_to(ROOT)}: {len(table)} operators, {len(cases)} probes; float but not double: "
          f"{[op for op, e in table.items() if any('float' in t and 'double' not in t for t in e['types'].values())]}")

if __name__ == "__main__":
    main()
