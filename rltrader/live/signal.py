"""The decision for the next bar, as one JSON line, and a watcher that follows a growing bar file.

``rltrader signal`` reads a bar file, warms the stream up on its history, and prints what the bundle
decides at the last closed bar: the action to hold from the next bar's open. The account behind that
decision starts flat at the first bar after the warm-up (or at ``--start``) and trades every bar since,
as the backtest would: a recurrent policy's state and the position it holds depend on that path, so
the line says how many bars of history and decisions lie behind it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rltrader.data.bar_arrays import bar_time
from rltrader.env.market import ACTION_NAMES
from rltrader.errors import DataError
from rltrader.live.stream import DecisionStream, StepBatch

T = TypeVar("T")

#: Seconds between looks at a followed file.
POLL_SECONDS = 0.5
#: Looks at an unreadable file (a row being written) before its error counts.
UNREADABLE_LOOKS = 4


def decision_record(stream: DecisionStream, batch: StepBatch, index: int = -1) -> dict[str, Any]:
    """The JSON line for the decision at ``batch``'s bar ``index`` (the last by default)."""
    about = stream.bundle.description
    index %= len(batch)
    action = int(batch.actions[index])
    later = len(batch) - 1 - index  # bars of the batch after this one
    record: dict[str, Any] = {
        "symbol": about.symbol, "bar": bar_time(int(batch.timestamps[index])),
        "action": ACTION_NAMES[action] if action >= 0 else None,
        "target_position": action - 1 if action >= 0 else None,
        "probabilities": ({name: round(float(p), 6) for name, p in zip(ACTION_NAMES, batch.probabilities[index],
                                                                      strict=True)} if action >= 0 else None),
        "fills_at": "the next bar's open",
        "position": ACTION_NAMES[int(batch.held[index])], "units": float(batch.units[index]),
        "equity": round(float(batch.equity[index]), 2),
        "history_bars": stream.bars_seen - later,
        "decisions": stream.decisions - int((batch.actions[index + 1 :] >= 0).sum()),
    }
    if action < 0:
        record["why_none"] = (f"still warming up: {stream.bars_seen:,} of {stream.warmup + 1:,} bars"
                              if stream.bars_seen <= stream.warmup else "before --start")
    return record


@dataclass
class FileWatcher:
    """Yields whenever a file's size or modification time changes, looking every ``poll`` seconds.

    :param path: the file a terminal export appends to
    :param poll: seconds between looks
    """

    path: Path
    poll: float = POLL_SECONDS

    def signature(self) -> tuple[int, int] | None:
        """The file's (size, modification time) now: take it *before* reading the file, so that a bar appended
        while it was being read counts as a change."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def changes(self, seen: tuple[int, int] | None) -> Iterator[None]:
        """One item per change after ``seen`` (:meth:`signature` taken before the last read); until interrupted."""
        while True:
            time.sleep(self.poll)
            current = self.signature()
            if current is not None and current != seen:
                seen = current
                yield None


def read_when_complete(read: Callable[[], T], watcher: FileWatcher) -> T:
    """``read()``, retried over a few looks while it fails: a terminal may be halfway through writing a row.

    An error that outlasts :data:`UNREADABLE_LOOKS` looks is the file's, and is raised."""
    for attempt in range(UNREADABLE_LOOKS):
        try:
            return read()
        except DataError:
            if attempt == UNREADABLE_LOOKS - 1:
                raise
            time.sleep(watcher.poll)
    raise AssertionError("unreachable")


def last_decision_index(batch: StepBatch) -> int:
    """The last bar of ``batch`` that carries a decision (or its last bar when none does)."""
    decided = np.flatnonzero(batch.actions >= 0)
    return int(decided[-1]) if len(decided) else len(batch) - 1


__all__ = ["FileWatcher", "POLL_SECONDS", "decision_record", "last_decision_index", "read_when_complete"]
