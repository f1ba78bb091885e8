"""Fault injection: make one iteration fail once, to show (and test) that retries resume.

Set ``RLTRADER_FAIL_ONCE_AT_ITERATION=N`` (1-based) and iteration N raises
:class:`InjectedFault` right after its first checkpoint, once per run directory: a marker
file remembers that the fault fired, so the retry (same process or a new one) trains on
from that checkpoint instead of failing again. The checkpoint must come before the
iteration ends, so ``checkpoint_freq`` has to be below the iteration's budget.
"""

from __future__ import annotations

import os
from pathlib import Path

from rltrader.atomic import write_text

FAULT_VARIABLE = "RLTRADER_FAIL_ONCE_AT_ITERATION"


class InjectedFault(RuntimeError):
    """The deliberate, transient failure asked for by ``RLTRADER_FAIL_ONCE_AT_ITERATION``."""


def _marker(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / f".fault_injected_iter_{iteration:02d}"


def maybe_inject_fault(run_dir: Path, iteration: int) -> None:
    """Raise :class:`InjectedFault` if the variable names ``iteration`` and it has not fired here yet."""
    wanted = os.environ.get(FAULT_VARIABLE, "").strip()
    if not wanted.isdigit() or int(wanted) != iteration + 1:
        return
    marker = _marker(run_dir, iteration)
    if marker.exists():
        return
    write_text(marker, "fired\n")
    raise InjectedFault(f"{FAULT_VARIABLE}={wanted}: iteration {iteration + 1} fails once after its "
                        "first checkpoint (fault injection)")
