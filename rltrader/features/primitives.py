"""The primitives features are made of, each with its step form and its graph form side by side.

Every primitive has:

* a **step** form: one branch of the compiled interpreter
  (:func:`rltrader.features.step_kernel.run_program`, selected by :attr:`Primitive.code`), which the batch
  pipeline runs over a whole file and the live stream over each new bar: the same code, hence the same bits;
* a **graph** form: the ONNX nodes that compute it for one bar (:attr:`Primitive.graph`), emitted through
  the small :class:`GraphEmitter` interface so that this module needs no ONNX import. Each graph form
  uses only (operator, element type) pairs ONNX Runtime 1.14 (MetaTrader 5's) has a CPU kernel for; the
  exporter checks every graph against that runtime's kernel table before writing it.

Two graph forms are not the step's arithmetic to the bit, and the parity check measures both: ``cos`` is
``Sin(x + pi/2)`` (1.14 has no double ``Cos`` kernel) and ``log1p`` is ``Log(1 + x)`` (ONNX has no
``Log1p``); each moves a value by about 1e-16 relative, which the float32 observation hides but for a rare
near-tie. A window's sum is a ``ReduceSum``, not strictly oldest first: the same order of error.

State: ``lag`` and ``rolling`` read the history of their operand, which the program keeps once per
operand (a ring, oldest first, shifted after each bar); ``ewm`` keeps its average in one slot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class GraphEmitter(Protocol):
    """What a graph form needs of the graph being built (implemented by the export package)."""

    def op(self, kind: str, *inputs: str, **attributes: object) -> str:
        """Add one ONNX node of type ``kind``; returns its output's name."""

    def const(self, value: float) -> str:
        """A double constant of shape ``[1, 1]``."""

    def const_ints(self, values: list[int]) -> str:
        """An int64 constant of shape ``[len(values)]`` (slice bounds, axes)."""

    def bar_columns(self, start: int, stop: int) -> str:
        """Columns ``start .. stop - 1`` of the closed bar's fields (double ``[1, stop - start]``)."""

    def state_columns(self, start: int, stop: int) -> str:
        """Columns ``start .. stop - 1`` of the features' carried state (double ``[1, stop - start]``)."""


#: A graph form: (emitter, operand tensor names, the node's parameters, state offsets) -> output names.
GraphForm = Callable[[GraphEmitter, Sequence[str], Sequence[float], Sequence[int]], list[str]]


@dataclass(frozen=True)
class Primitive:
    """One primitive (see the module docstring).

    :param name: as :class:`~rltrader.features.expressions.Expr` names it
    :param arity: operands
    :param graph: its graph form
    :param outputs: values it produces (the rolling window: mean and std)
    :param condition: whether it yields a condition (true/false) rather than a number
    :param state: ``"history"`` (reads its operand's ring), ``"slot"`` (keeps one value) or ``""``
    """

    name: str
    arity: int
    graph: GraphForm
    outputs: int = 1
    condition: bool = False
    state: str = ""

    @property
    def code(self) -> int:
        """The step interpreter's opcode."""
        return NAMES.index(self.name)


def _unary(kind: str) -> GraphForm:
    return lambda g, x, params, at: [g.op(kind, x[0])]


def _binary(kind: str) -> GraphForm:
    return lambda g, x, params, at: [g.op(kind, x[0], x[1])]


def _field(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    index = int(params[0])
    return [g.bar_columns(index, index + 1)]


def _cos(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    return [g.op("Sin", g.op("Add", x[0], g.const(math.pi / 2)))]  # no double Cos kernel in ONNX Runtime 1.14


def _log1p(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    return [g.op("Log", g.op("Add", g.const(1.0), x[0]))]


def _sign(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    zero = g.const(0.0)
    signed = g.op("Where", g.op("Greater", x[0], zero), g.const(1.0),
                  g.op("Where", g.op("Less", x[0], zero), g.const(-1.0), zero))
    return [g.op("Where", g.op("IsNaN", x[0]), g.const(math.nan), signed)]


def _lag(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    return [g.state_columns(at[0], at[0] + 1)]


def _ewm(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    """pandas' ``ewm(adjust=False)`` step, as the interpreter's branch: start at the first value, keep the
    average on a NaN value or a repeated one, else ``(old * avg + new * x) / (old + new)``."""
    alpha = float(params[0])
    value, weighted = x[0], g.state_columns(at[0], at[0] + 1)
    old = 1.0 - alpha
    new = alpha if old != alpha else 1.0 - old
    update = g.op("Div", g.op("Add", g.op("Mul", g.const(old), weighted), g.op("Mul", g.const(new), value)),
                  g.const(old + new))
    keep = g.op("Or", g.op("IsNaN", value), g.op("Equal", weighted, value))
    return [g.op("Where", g.op("IsNaN", weighted), value, g.op("Where", keep, weighted, update))]


def _rolling(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    """Mean and population std of the window (the ring's last ``window - 1`` values and this bar's), two passes."""
    window = int(params[0])
    values = g.op("Concat", g.state_columns(at[0], at[0] + window - 1), x[0], axis=1)
    axes = g.const_ints([1])
    count = g.const(float(window))
    mean = g.op("Div", g.op("ReduceSum", values, axes, keepdims=1), count)
    deviation = g.op("Sub", values, mean)
    squares = g.op("ReduceSum", g.op("Mul", deviation, deviation), axes, keepdims=1)
    return [mean, g.op("Sqrt", g.op("Div", squares, count))]


def _where(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    return [g.op("Where", x[0], x[1], x[2])]


def _const(g: GraphEmitter, x: Sequence[str], params: Sequence[float], at: Sequence[int]) -> list[str]:
    return [g.const(float(params[0]))]


#: Every primitive; the position in this tuple is the opcode (the interpreter's branches follow it).
TABLE: tuple[Primitive, ...] = (
    Primitive("field", 0, _field),
    Primitive("const", 0, _const),
    Primitive("add", 2, _binary("Add")),
    Primitive("sub", 2, _binary("Sub")),
    Primitive("mul", 2, _binary("Mul")),
    Primitive("div", 2, _binary("Div")),
    Primitive("neg", 1, _unary("Neg")),
    Primitive("abs", 1, _unary("Abs")),
    Primitive("log", 1, _unary("Log")),
    Primitive("log1p", 1, _log1p),
    Primitive("sqrt", 1, _unary("Sqrt")),
    Primitive("sin", 1, _unary("Sin")),
    Primitive("cos", 1, _cos),
    Primitive("floor", 1, _unary("Floor")),
    Primitive("sign", 1, _sign),
    Primitive("max", 2, _binary("Max")),
    Primitive("isnan", 1, _unary("IsNaN"), condition=True),
    Primitive("greater", 2, _binary("Greater"), condition=True),
    Primitive("less", 2, _binary("Less"), condition=True),
    Primitive("or", 2, _binary("Or"), condition=True),
    Primitive("and", 2, _binary("And"), condition=True),
    Primitive("where", 3, _where),
    Primitive("lag", 1, _lag, state="history"),
    Primitive("ewm", 1, _ewm, state="slot"),
    Primitive("rolling", 1, _rolling, outputs=2, state="history"),
)
NAMES: tuple[str, ...] = tuple(primitive.name for primitive in TABLE)
PRIMITIVES: dict[str, Primitive] = {primitive.name: primitive for primitive in TABLE}

__all__ = ["NAMES", "PRIMITIVES", "TABLE", "GraphEmitter", "GraphForm", "Primitive"]
