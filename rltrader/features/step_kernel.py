"""The step form of every primitive: one compiled interpreter that advances a feature program bar by bar.

The batch pipeline calls :func:`run_program` once over a whole file, the live stream once per batch of new
bars, from the state the previous call left: the same code on the same values, so a streamed feature is
the batch feature to the bit, however the bars arrive. A whole file costs microseconds per bar.

Branches follow :data:`rltrader.features.primitives.TABLE` (the opcode is the position there); conditions
are held as 1.0 and 0.0. Division by zero gives inf or NaN as numpy does (``error_model="numpy"``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from rltrader.features.primitives import NAMES
from rltrader.features.program import ARG_A, ARG_B, ARG_C, OUT, PARAM_A, PARAM_B
from rltrader.features.rolling import mean_std

(FIELD, CONST, ADD, SUB, MUL, DIV, NEG, ABS, LOG, LOG1P, SQRT, SIN, COS, FLOOR, SIGN, MAX, ISNAN, GREATER, LESS,
 OR, AND, WHERE, LAG, EWM, ROLLING) = (NAMES.index(name) for name in (
    "field", "const", "add", "sub", "mul", "div", "neg", "abs", "log", "log1p", "sqrt", "sin", "cos", "floor",
    "sign", "max", "isnan", "greater", "less", "or", "and", "where", "lag", "ewm", "rolling"))
assert len(NAMES) == ROLLING + 1, "a primitive without a step branch"


@njit(cache=True, nogil=True, error_model="numpy")
def run_program(codes: np.ndarray, ints: np.ndarray, floats: np.ndarray, rings: np.ndarray, outputs: np.ndarray,
                registers: int, longest_window: int, state: np.ndarray, fields: np.ndarray, out: np.ndarray) -> None:
    """Features of each bar of ``fields`` ``(N, 7)`` into ``out`` ``(N, features)``, advancing ``state``.

    :param codes: opcode per instruction; ``ints``, ``floats``: its registers and parameters
        (:meth:`~rltrader.features.program.FeatureProgram.arrays`)
    :param rings: (source register, state offset, size) of each history
    :param state: the carried state, changed in place
    :param fields: the bars' time (whole seconds since 1970), open, high, low, close, tick volume, spread
    """
    value = np.empty(registers)
    window = np.empty(max(longest_window, 1))
    for j in range(fields.shape[0]):
        for i in range(codes.shape[0]):
            code = codes[i]
            o, a, b = ints[i, OUT], ints[i, ARG_A], ints[i, ARG_B]
            if code == FIELD:
                value[o] = fields[j, ints[i, PARAM_A]]
            elif code == CONST:
                value[o] = floats[i]
            elif code == ADD:
                value[o] = value[a] + value[b]
            elif code == SUB:
                value[o] = value[a] - value[b]
            elif code == MUL:
                value[o] = value[a] * value[b]
            elif code == DIV:
                value[o] = value[a] / value[b]
            elif code == NEG:
                value[o] = -value[a]
            elif code == ABS:
                value[o] = abs(value[a])
            elif code == LOG:
                value[o] = math.log(value[a]) if value[a] > 0.0 else (-np.inf if value[a] == 0.0 else np.nan)
            elif code == LOG1P:
                value[o] = math.log1p(value[a]) if value[a] > -1.0 else (-np.inf if value[a] == -1.0 else np.nan)
            elif code == SQRT:
                value[o] = math.sqrt(value[a]) if value[a] >= 0.0 else np.nan
            elif code == SIN:
                value[o] = math.sin(value[a])
            elif code == COS:
                value[o] = math.cos(value[a])
            elif code == FLOOR:
                value[o] = np.floor(value[a])
            elif code == SIGN:
                x = value[a]
                value[o] = np.nan if math.isnan(x) else (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0))
            elif code == MAX:
                value[o] = value[a] if value[a] >= value[b] else value[b]
            elif code == ISNAN:
                value[o] = 1.0 if math.isnan(value[a]) else 0.0
            elif code == GREATER:
                value[o] = 1.0 if value[a] > value[b] else 0.0
            elif code == LESS:
                value[o] = 1.0 if value[a] < value[b] else 0.0
            elif code == OR:
                value[o] = 1.0 if (value[a] != 0.0 or value[b] != 0.0) else 0.0
            elif code == AND:
                value[o] = 1.0 if (value[a] != 0.0 and value[b] != 0.0) else 0.0
            elif code == WHERE:
                value[o] = value[b] if value[a] != 0.0 else value[ints[i, ARG_C]]
            elif code == LAG:
                value[o] = state[ints[i, PARAM_A]]
            elif code == EWM:  # pandas' ewm(adjust=False).mean() recursion (see primitives' graph form)
                slot, new_value, alpha = ints[i, PARAM_A], value[a], floats[i]
                weighted = state[slot]
                if math.isnan(weighted):
                    weighted = new_value
                elif not math.isnan(new_value) and weighted != new_value:
                    old = 1.0 - alpha
                    new = alpha if old != alpha else 1.0 - old  # pandas' irregular-interval branch when com == 1
                    weighted = (old * weighted + new * new_value) / (old + new)
                state[slot] = weighted
                value[o] = weighted
            elif code == ROLLING:
                start, width = ints[i, PARAM_A], ints[i, PARAM_B]
                for k in range(width - 1):
                    window[k] = state[start + k]
                window[width - 1] = value[a]
                value[o], value[o + 1] = mean_std(window[:width])
        for r in range(rings.shape[0]):
            source, offset, size = rings[r, 0], rings[r, 1], rings[r, 2]
            for k in range(size - 1):
                state[offset + k] = state[offset + k + 1]
            state[offset + size - 1] = value[source]
        for f in range(outputs.shape[0]):
            out[j, f] = value[outputs[f]]


__all__ = ["run_program"]
