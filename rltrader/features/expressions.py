"""Feature expressions: a feature is declared once, as arithmetic over the bar's fields and a few stateful
primitives, and every form of it (the batch columns, the streamed step, the ONNX graph) is read off that
declaration.

Why expressions and not three implementations: before, each feature's arithmetic was written three times
(pandas for the batch, a compiled kernel for the stream, ``onnx.helper`` nodes for the graph), held
together by parity tests, and the graph's idiom was one nobody ran in MetaTrader 5's runtime. Here a
declaration such as ::

    log_close = log(CLOSE)
    ret_4 = log_close - lag(log_close, 4)

is a small tree of :class:`Expr` nodes. :mod:`rltrader.features.program` turns the trees into one
flat program; :mod:`rltrader.features.step_kernel` runs it bar by bar (the stream is one call per new
bar, the batch one call over the file: the same code, so the two agree bit for bit), and the export
package emits each primitive's graph form (:mod:`rltrader.features.primitives`).

A node is either a number (float64; NaN is "not defined yet", as in pandas) or a condition (only for
:func:`where`). Conditions combine with ``|`` and ``&``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from rltrader.features.primitives import PRIMITIVES

Operand = Union["Expr", float, int]

#: The bar's fields, in the order of the step's input row (and of the ONNX graph's ``bar`` input).
BAR_FIELDS = ("time", "open", "high", "low", "close", "tick_volume", "spread")


@dataclass(frozen=True, eq=False)
class Expr:
    """One node: primitive ``op`` applied to ``args`` with constant ``params`` (see :mod:`primitives`).

    :param op: the primitive's name
    :param args: the operand nodes
    :param params: integers or floats the primitive reads (a lag, a window, a smoothing weight, a constant)
    :param output: which of a multi-output primitive's values this node is (the rolling mean is 0, its std 1)
    """

    op: str
    args: tuple[Expr, ...] = ()
    params: tuple[float, ...] = ()
    output: int = 0

    @property
    def key(self) -> tuple:
        """Structural identity: two declarations of the same arithmetic are computed once."""
        return (self.op, tuple(arg.key for arg in self.args), self.params, self.output)

    @property
    def is_condition(self) -> bool:
        return PRIMITIVES[self.op].condition

    # arithmetic on numbers; ``|`` and ``&`` on conditions
    def __add__(self, other: Operand) -> Expr:
        return _binary("add", self, other)

    def __radd__(self, other: Operand) -> Expr:
        return _binary("add", other, self)

    def __sub__(self, other: Operand) -> Expr:
        return _binary("sub", self, other)

    def __rsub__(self, other: Operand) -> Expr:
        return _binary("sub", other, self)

    def __mul__(self, other: Operand) -> Expr:
        return _binary("mul", self, other)

    def __rmul__(self, other: Operand) -> Expr:
        return _binary("mul", other, self)

    def __truediv__(self, other: Operand) -> Expr:
        return _binary("div", self, other)

    def __rtruediv__(self, other: Operand) -> Expr:
        return _binary("div", other, self)

    def __neg__(self) -> Expr:
        return Expr("neg", (self,))

    def __gt__(self, other: Operand) -> Expr:  # type: ignore[override]
        return _binary("greater", self, other)

    def __lt__(self, other: Operand) -> Expr:  # type: ignore[override]
        return _binary("less", self, other)

    def __or__(self, other: Expr) -> Expr:
        return Expr("or", (self, other))

    def __and__(self, other: Expr) -> Expr:
        return Expr("and", (self, other))


def const(value: float) -> Expr:
    """A constant (double)."""
    return Expr("const", (), (float(value),))


def _operand(value: Operand) -> Expr:
    return value if isinstance(value, Expr) else const(value)


def _binary(op: str, a: Operand, b: Operand) -> Expr:
    return Expr(op, (_operand(a), _operand(b)))


def field(name: str) -> Expr:
    """The closed bar's ``name`` (one of :data:`BAR_FIELDS`); ``time`` is its open time in whole seconds
    since 1970 (UTC), ``tick_volume`` and ``spread`` are 0 in a file without them."""
    return Expr("field", (), (float(BAR_FIELDS.index(name)),))


TIME, OPEN, HIGH, LOW, CLOSE, VOLUME, SPREAD = (field(name) for name in BAR_FIELDS)


def log(x: Operand) -> Expr:
    return Expr("log", (_operand(x),))


def log1p(x: Operand) -> Expr:
    return Expr("log1p", (_operand(x),))


def sqrt(x: Operand) -> Expr:
    return Expr("sqrt", (_operand(x),))


def sin(x: Operand) -> Expr:
    return Expr("sin", (_operand(x),))


def cos(x: Operand) -> Expr:
    return Expr("cos", (_operand(x),))


def absolute(x: Operand) -> Expr:
    return Expr("abs", (_operand(x),))


def floor(x: Operand) -> Expr:
    return Expr("floor", (_operand(x),))


def sign(x: Operand) -> Expr:
    """-1, 0 or +1; NaN stays NaN (as numpy's sign)."""
    return Expr("sign", (_operand(x),))


def maximum(a: Operand, b: Operand) -> Expr:
    """The larger of two numbers that are not NaN (guard a NaN with :func:`where` first)."""
    return _binary("max", a, b)


def modulo(x: Operand, divisor: float) -> Expr:
    """``x - divisor * floor(x / divisor)``: exact for whole numbers below 2**53 (times, weekdays)."""
    x = _operand(x)
    return x - divisor * floor(x / divisor)


def is_nan(x: Operand) -> Expr:
    return Expr("isnan", (_operand(x),))


def where(condition: Expr, if_true: Operand, if_false: Operand) -> Expr:
    """``if_true`` where ``condition`` holds, else ``if_false`` (both are computed, as in ONNX)."""
    if not condition.is_condition:
        raise TypeError(f"where() needs a condition, got the number {condition.op!r}")
    return Expr("where", (condition, _operand(if_true), _operand(if_false)))


def lag(x: Operand, bars: int) -> Expr:
    """``x`` as it was ``bars`` bars ago; NaN until that many bars came before."""
    if bars < 1:
        raise ValueError(f"lag needs at least 1 bar, got {bars}")
    return Expr("lag", (_operand(x),), (float(bars),))


def ewm(x: Operand, alpha: float) -> Expr:
    """pandas' ``ewm(alpha=alpha, adjust=False).mean()``, with its recursion to the bit: started at the first
    value that is not NaN; a NaN value leaves the average as it was."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"ewm needs 0 < alpha <= 1, got {alpha}")
    return Expr("ewm", (_operand(x),), (float(alpha),))


def rolling(x: Operand, window: int) -> tuple[Expr, Expr]:
    """Mean and population standard deviation of the last ``window`` values of ``x`` (this bar's included),
    each window summed on its own, oldest first (:func:`rltrader.features.rolling.mean_std`); NaN while the
    window holds a NaN."""
    if window < 2:
        raise ValueError(f"a rolling window needs at least 2 bars, got {window}")
    x = _operand(x)
    return (Expr("rolling", (x,), (float(window),), 0), Expr("rolling", (x,), (float(window),), 1))


def pandas_alpha(alpha: float | None = None, span: float | None = None) -> float:
    """The smoothing weight pandas uses for ``ewm(alpha=...)`` or ``ewm(span=...)``: it converts both to a
    centre of mass and back (``1 / (1 + com)``), which may differ from the given alpha in the last bit."""
    com = (span - 1) / 2 if span is not None else (1 - alpha) / alpha  # type: ignore[operator]
    return 1.0 / (1.0 + float(com))


__all__ = ["BAR_FIELDS", "CLOSE", "HIGH", "LOW", "OPEN", "SPREAD", "TIME", "VOLUME", "Expr", "absolute", "const",
           "cos", "ewm", "field", "floor", "is_nan", "lag", "log", "log1p", "maximum", "modulo", "pandas_alpha",
           "rolling", "sign", "sin", "sqrt", "where"]
