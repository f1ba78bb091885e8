"""A new model takes over a running account at a bar boundary, carrying the position.

When the registry promotes a new champion (or rolls one back), a paper account that follows the
model must switch without closing its position or skipping a bar. Between two bars:

1. the new model's decision stream replays the file's bars from where it was scored on its held-out
   window (its warm-up before that), deciding as it did there, so its features, its observation
   window and its LSTM state are what they would be had it been trading all along;
2. it then takes over the account as the old stream left it: equity, entry price, units held, the
   position, and the order decided at the last close by the old model, which still fills at the
   next bar's open (it was already sent);
3. from the next bar on, the new model decides.

So the ledger stays append-only and every bar is decided by exactly one version.
"""

from __future__ import annotations

import numpy as np

from rltrader.bundle import Bundle
from rltrader.data.bar_arrays import BarArrays
from rltrader.live.stream import DecisionStream


def replay_start(bundle: Bundle, bars: BarArrays, scored_from: str | None) -> int:
    """The row the new model's replay starts deciding at: where it was scored (its held-out window's first bar),
    or as early as the file allows after its warm-up."""
    earliest = bundle.description.warmup_bars
    if scored_from is None:
        return earliest
    stamp = int(np.datetime64(scored_from, "ns").astype(np.int64))
    return max(earliest, int(np.searchsorted(bars.timestamps, stamp)))


def take_over(old: DecisionStream, bundle: Bundle, bars: BarArrays, scored_from: str | None) -> DecisionStream:
    """A stream of ``bundle`` that continues ``old``'s account from ``old``'s last bar (see the module docstring).

    :param old: the stream that decided up to now (its last bar is the boundary)
    :param bundle: the new model
    :param bars: the bar file up to at least ``old``'s last bar
    :param scored_from: the first bar of the new model's held-out window (None: from its warm-up)
    """
    if old.last_time is None:
        raise ValueError("the old stream has processed no bar: open the account with the new model instead")
    end = int(np.searchsorted(bars.timestamps, old.last_time, side="right"))
    first = min(replay_start(bundle, bars, scored_from), end - 1)
    new = DecisionStream(bundle, int(bars.timestamps[first]))
    new.advance(bars.rows(max(0, first - bundle.description.warmup_bars), end))
    for mine, theirs in ((new.account.account, old.account.account), (new.account.held, old.account.held),
                         (new.account.alive, old.account.alive), (new.account.pending, old.account.pending)):
        mine[...] = theirs
    new.start = old.start
    new.decisions = old.decisions
    return new


__all__ = ["replay_start", "take_over"]
