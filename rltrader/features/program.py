"""A set of declared features compiled into one flat program: instructions, registers and the carried state.

The program is what every form of the features runs: the step interpreter reads its arrays
(:func:`rltrader.features.step_kernel.run_program`), the export package walks its
:attr:`FeatureProgram.instructions` and emits each primitive's graph form. Both read and write the
same state vector, laid out here:

* one **history** ring per operand that a ``lag`` or ``rolling`` reads, holding its last values oldest
  first (as many as the longest lag, or the widest window less one); after each bar the ring shifts left
  and takes the operand's new value;
* one **slot** per exponential average.

Everything starts at NaN: a lag or window reaching before the first bar is NaN, an average is unstarted.
Equal subexpressions are computed once (``log(close)`` feeds four returns and a volatility).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rltrader.features.expressions import Expr
from rltrader.features.primitives import PRIMITIVES

#: Columns of :attr:`FeatureProgram.ints`: the output register, up to three operand registers, two parameters.
OUT, ARG_A, ARG_B, ARG_C, PARAM_A, PARAM_B = range(6)


@dataclass(frozen=True)
class Instruction:
    """One primitive applied: registers ``outputs`` from registers ``args``; ``state`` offsets it reads."""

    primitive: str
    outputs: tuple[int, ...]
    args: tuple[int, ...]
    params: tuple[float, ...]
    state: tuple[int, ...]


@dataclass(frozen=True)
class Ring:
    """The carried history of one operand: ``size`` values from ``offset`` in the state, oldest first."""

    source: int  # the operand's register
    offset: int
    size: int


@dataclass(frozen=True)
class FeatureProgram:
    """Compiled features (see the module docstring).

    :param names: the features, in declaration order (the columns of the interpreter's output)
    :param instructions: in evaluation order
    :param rings: the histories, each shifted after every bar
    :param slots: state offsets of the exponential averages
    :param registers: how many values one bar computes
    :param outputs: the register of each feature
    """

    names: tuple[str, ...]
    instructions: tuple[Instruction, ...]
    rings: tuple[Ring, ...]
    slots: tuple[int, ...]
    registers: int
    outputs: tuple[int, ...]

    @classmethod
    def compile(cls, features: Mapping[str, Expr]) -> FeatureProgram:
        """The program computing ``features`` (name -> declaration), in their order."""
        return _Compiler().compile(features)

    @property
    def state_size(self) -> int:
        return sum(ring.size for ring in self.rings) + len(self.slots)

    def initial_state(self) -> np.ndarray:
        """The state before the first bar: nothing seen, every value NaN."""
        return np.full(self.state_size, np.nan)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the interpreter reads: opcodes, their integer columns (:data:`OUT` ...), their float
        parameter, the rings (source, offset, size) and the output registers."""
        codes = np.array([PRIMITIVES[i.primitive].code for i in self.instructions], dtype=np.int64)
        ints = np.full((len(self.instructions), 6), -1, dtype=np.int64)
        floats = np.zeros(len(self.instructions))
        for row, instruction in enumerate(self.instructions):
            ints[row, OUT] = instruction.outputs[0]
            for column, register in zip((ARG_A, ARG_B, ARG_C), instruction.args, strict=False):
                ints[row, column] = register
            if instruction.primitive == "field":
                ints[row, PARAM_A] = int(instruction.params[0])
            elif instruction.primitive in ("const", "ewm"):
                floats[row] = instruction.params[0]
            if instruction.state:
                ints[row, PARAM_A] = instruction.state[0]
            if instruction.primitive == "rolling":
                ints[row, PARAM_B] = int(instruction.params[0])
        rings = np.array([[r.source, r.offset, r.size] for r in self.rings], dtype=np.int64).reshape(-1, 3)
        return codes, ints, floats, rings, np.array(self.outputs, dtype=np.int64)

    def longest_window(self) -> int:
        """The widest rolling window (the interpreter's scratch size)."""
        return max([int(i.params[0]) for i in self.instructions if i.primitive == "rolling"], default=1)


class _Compiler:
    """Topological order, shared subexpressions, register and state allocation."""

    def __init__(self) -> None:
        self.registers: dict[tuple, int] = {}  # computation key -> first output register
        self.order: list[tuple[Expr, int]] = []  # (node, first register) in evaluation order
        self.count = 0
        self.history: dict[int, int] = {}  # operand register -> values of history needed

    def compile(self, features: Mapping[str, Expr]) -> FeatureProgram:
        if not features:
            raise ValueError("a feature program needs at least one feature")
        outputs = []
        for name, expr in features.items():
            if not isinstance(expr, Expr) or expr.is_condition:
                raise TypeError(f"feature {name!r} must be a number expression, got {expr!r}")
            outputs.append(self._visit(expr))
        rings, offset = [], 0
        ring_at: dict[int, int] = {}
        for source, size in self.history.items():
            rings.append(Ring(source, offset, size))
            ring_at[source] = offset
            offset += size
        slots = []
        instructions = []
        for node, first in self.order:
            primitive = PRIMITIVES[node.op]
            args = tuple(self._register(arg) for arg in node.args)
            state: tuple[int, ...] = ()
            if node.op == "lag":
                source = args[0]
                state = (ring_at[source] + self.history[source] - int(node.params[0]),)
            elif node.op == "rolling":
                source = args[0]
                state = (ring_at[source] + self.history[source] - (int(node.params[0]) - 1),)
            elif primitive.state == "slot":
                state = (offset + len(slots),)
                slots.append(offset + len(slots))
            instructions.append(Instruction(node.op, tuple(range(first, first + primitive.outputs)), args,
                                            node.params, state))
        return FeatureProgram(tuple(features), tuple(instructions), tuple(rings), tuple(slots), self.count,
                              tuple(outputs))

    @staticmethod
    def _computation(node: Expr) -> tuple:
        return (node.op, tuple(arg.key for arg in node.args), node.params)

    def _register(self, node: Expr) -> int:
        return self.registers[self._computation(node)] + node.output

    def _visit(self, node: Expr) -> int:
        key = self._computation(node)
        if key not in self.registers:
            primitive = PRIMITIVES.get(node.op)
            if primitive is None:
                raise ValueError(f"unknown primitive {node.op!r}")
            if len(node.args) != primitive.arity:
                raise ValueError(f"{node.op} takes {primitive.arity} operands, got {len(node.args)}")
            for arg in node.args:
                self._visit(arg)
            if node.op == "where" and (not node.args[0].is_condition
                                       or node.args[1].is_condition or node.args[2].is_condition):
                raise TypeError("where(condition, number, number)")
            if node.op in ("or", "and") and not all(arg.is_condition for arg in node.args):
                raise TypeError(f"{node.op} combines conditions")
            if node.op not in ("where", "or", "and") and any(arg.is_condition for arg in node.args):
                raise TypeError(f"{node.op} takes numbers; turn a condition into one with where()")
            if primitive.state == "history":
                needed = int(node.params[0]) - (1 if node.op == "rolling" else 0)
                source = self._register(node.args[0])
                self.history[source] = max(self.history.get(source, 0), needed)
            self.registers[key] = self.count
            self.count += primitive.outputs
            self.order.append((node, self.registers[key]))
        return self._register(node)


__all__ = ["ARG_A", "ARG_B", "ARG_C", "OUT", "PARAM_A", "PARAM_B", "FeatureProgram", "Instruction", "Ring"]
