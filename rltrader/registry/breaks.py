"""Has the champion's edge broken? A sequential test on its live per-bar returns against what it was promoted on.

A champion is promoted on held-out bars; its per-bar returns there give what to expect of it live: a
mean ``mu`` and a spread ``sd``. After a regime break the live mean falls (the edge is gone, or turned
against it), long before a retrain on a window of mostly old bars could notice. The test is Page's
one-sided CUSUM (Page 1954) on the standardized live returns ``z = (r - mu) / sd`` (clipped to
``CLIP`` so one fat-tailed bar cannot raise an alarm alone)::

    S_t = max(0, S_{t-1} - z_t - k)        alarm when S_t > h, then S is reset

``k`` is half the drop it is built to see fastest: the champion's whole edge, ``mu / sd`` (a mean
falling to zero), so ``k = mu / (2 sd)``. ``h`` sets the false-alarm rate: it is calibrated on the
champion's own held-out returns, resampled in blocks (their fat tails, their runs of flat bars and
their autocorrelation kept) into windows like its own, from which ``mu`` and ``sd`` are estimated as
for the real detector, and long streams with no break, as the smallest threshold that raises at most
``false_alarms_per_10k`` alarms per 10,000 bars over them (:func:`calibrate`). Where the CUSUM last left zero before an
alarm estimates the bar the break began (the change point, Page's estimate), which a challenger can train from.

A champion with no edge on its held-out bars (``mu <= 0``) has nothing to lose: no detector is made.

**Which null.** A champion is *selected* on its held-out window: it won there, so that window's mean
overstates what it earns live (the winner's curse; champions a retrain promoted on 400 held-out bars of a
time-of-day market earned 0.3-1.2 times their held-out mean live). A test of "earns what it promised" on
such a window reads the shortfall as a break and rings where nothing broke. So a champion's first detector,
calibrated on the window it was selected on, tests ``null="break_even"``: is it *losing*? Its centre is
zero, ``z = r / sd``, with the same ``k`` (half the promised edge), and its threshold is calibrated in the
world where the promise was all luck (the window drawn from the reference, the live stream from the
reference less its mean): a champion that earns something rings less often than one that breaks even. The
price is speed: a flip of the edge from ``+mu`` to ``-mu`` moves the statistic by ``mu / sd - k`` per bar, a
third of the ``2 mu / sd - k`` the promised test gains (on the retrain replay of ``bench/retrain_break.py``
the alarms came 108-791 bars after a break, against 29-275), and a champion whose live edge was less than half
its promise, and which loses about as little after a break, is never seen: the statistic falls by ``k`` per bar
faster than the losses raise it (on the replay's heads reading the observation, two champions earned 0.65 times
their promise before the break and lost 0.2-0.3 of it after: no alarm in 3,000 bars). So a champion known by its
selected window is held to :data:`PROMISE_SHARE` of its promise (``null="share"``: centre ``share mu``, ``k`` half
of that, its threshold calibrated in the world where it earns exactly that share), and a crossing counts only where
it is losing since the fall the alarm dates (the paper account's rule): the question is still "is it losing?",
asked with a statistic that rises by ``share mu / (2 sd)`` per bar plus its losses. Once enough bars are known,
most of them live and not selected on (:data:`REFERENCE_BARS`), the champion is held to what it earned
(``null="promised"``).

**When did it break?** The CUSUM's excursion start (Page's estimate) dates the change late under the
break-even null: the statistic leaves zero for good only once the champion loses on balance, well after its
edge went. :func:`change_point` dates it from all the champion's returns instead, its held-out window first:
the split into a higher mean before and a lower one after that the returns favour most. A paper account
counts a crossing as an alarm only when the live mean since that date is below the centre the test holds the
champion to, or below zero for the share null (:attr:`BreakAlarm.confirming_mean`): a run of losses
inside a stretch that earned crosses too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from numba import njit

CLIP = 4.0
BLOCK_BARS = 48  # resampled blocks: long enough to keep a trade's run of returns together
REFERENCE_BARS = 2_000
"""Bars of a champion's returns a detector is fully calibrated on: its held-out window, then its first live bars until
there are this many (until then it runs on the held-out bars, testing whether it is losing, at a stricter
rate: :func:`short_reference_rate`). A few hundred bars miss
the week-to-week swings of a strategy's returns (600 held-out bars of known-answer oracles gave 2.85 false alarms per
10,000 bars; 2,000 gave 0.42)."""
REPLICATES = 40


def short_reference_rate(bars: int, rate: float = 0.5) -> float:
    """The false-alarm rate to calibrate for on a reference of ``bars`` (fewer than :data:`REFERENCE_BARS`): ``rate``
    scaled down in proportion (at least a tenth of it), since a short window misses the swings that make the
    rest of the false alarms (400 held-out bars of known-answer oracles calibrated for 0.1 gave 0.75 per 10,000; a
    trained champion tested against breaking even on 400 held-out bars calibrated for 0.5 rang three times in 5,000
    bars while earning)."""
    return rate * min(1.0, max(0.1, bars / REFERENCE_BARS))


Null = Literal["promised", "break_even", "share"]
"""What a detector holds a champion to: the mean of the returns it was calibrated on, breaking even, or
:data:`PROMISE_SHARE` of that mean (a crossing of which counts only where the champion is losing)."""
PROMISE_SHARE = 0.5
"""The ``"share"`` null's centre, as a share of the held-out mean a champion was promoted on: what a champion
selected on a few hundred held-out bars can be expected to earn live at least (on the retrain replays of
``bench/retrain_break.py`` champions earned 0.54-1.4 times their held-out mean live before a break, earlier builds'
0.3-1.2)."""
STREAM_BARS = 20_000


@njit(cache=True, nogil=True)
def _cusum(returns: np.ndarray, mean: float, sd: float, k: float, h: float, state: np.ndarray, offset: int,
           alarms: np.ndarray) -> int:
    """Run the lower CUSUM over ``returns`` (``offset``: the bar number of ``returns[0]``), carrying ``state``
    (statistic, excursion's first bar, its sum of returns, its bars) in place; write each alarm's (bar, change
    bar, statistic, mean return since the change bar) into ``alarms`` while there is room; return how many rang."""
    statistic, run_start, run_sum, run_bars = state[0], state[1], state[2], state[3]
    count = 0
    for index in range(len(returns)):
        if statistic == 0.0:
            run_start, run_sum, run_bars = float(offset + index), 0.0, 0.0
        z = min(max((returns[index] - mean) / sd, -CLIP), CLIP)
        statistic = max(0.0, statistic - z - k)
        run_sum += returns[index]
        run_bars += 1.0
        if statistic > h:
            if count < alarms.shape[0]:
                alarms[count, 0] = offset + index
                alarms[count, 1] = run_start
                alarms[count, 2] = statistic
                alarms[count, 3] = run_sum / run_bars
            count += 1
            statistic = 0.0
    state[0], state[1], state[2], state[3] = statistic, run_start, run_sum, run_bars
    return count


@dataclass(frozen=True)
class BreakAlarm:
    """An alarm: the bar it rang at, the bar the fall began (the change point), and the evidence.

    :param bar: the bar (number in the monitored stream) at which the statistic crossed the threshold
    :param change_bar: the first bar of the excursion that crossed it (Page's estimate of the break's start;
        :func:`change_point` dates it better where the returns before the watch began are known)
    :param statistic: the CUSUM at the alarm (above ``threshold``)
    :param threshold: ``h``
    :param expected_mean: the per-bar mean the test centres on (its promise, 0.0 for break-even, or
        :data:`PROMISE_SHARE` of the promise)
    :param live_mean: the live per-bar mean from ``change_bar`` to ``bar``
    :param null: ``"promised"``, ``"break_even"`` or ``"share"`` (:data:`Null`)
    :param promised: the per-bar mean of the returns the detector was calibrated on
    """

    bar: int
    change_bar: int
    statistic: float
    threshold: float
    expected_mean: float
    live_mean: float
    null: str = "promised"
    promised: float | None = None

    @property
    def confirming_mean(self) -> float:
        """The live mean since the dated fall below which this crossing is an alarm: what the test holds the champion
        to, except under the ``"share"`` null, whose question is still whether it is losing (its centre, half the
        promise, is only how the CUSUM sees a fall sooner)."""
        return 0.0 if self.null == "share" else self.expected_mean

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class BreakDetector:
    """The CUSUM's settings and state: what a paper account following a champion keeps between bars.

    :param mean: the per-bar return the test centres on: the champion's promise (its reference's mean), 0.0 for
        the break-even null, :data:`PROMISE_SHARE` of the promise for the share null
    :param sd: the spread of its per-bar returns there
    :param k: the reference value, half the standardized drop to detect
    :param threshold: ``h``, calibrated for the false-alarm rate
    :param statistic: the CUSUM now
    :param run_start: the bar the current excursion began
    :param run_sum: the sum of the returns since ``run_start`` (the live mean an alarm reports)
    :param run_bars: the bars since ``run_start``
    :param bars: bars seen so far
    :param null: what it tests (:data:`Null`); states written before it existed tested the promise
    :param promised: the mean of its reference (the same as ``mean`` for the promised null)
    """

    mean: float
    sd: float
    k: float
    threshold: float
    statistic: float = 0.0
    run_start: int = 0
    run_sum: float = 0.0
    run_bars: int = 0
    bars: int = 0
    null: str = "promised"
    promised: float | None = None

    def update(self, returns: np.ndarray) -> list[BreakAlarm]:
        """Feed the next live per-bar returns in order; the alarms they raised (usually none)."""
        values = np.asarray(returns, dtype=np.float64)
        state = np.array([self.statistic, self.run_start, self.run_sum, self.run_bars], dtype=np.float64)
        found = np.zeros((len(values), 4))
        count = _cusum(values, self.mean, self.sd, self.k, self.threshold, state, self.bars, found)
        self.statistic, self.run_start, self.run_sum, self.run_bars = (float(state[0]), int(state[1]), float(state[2]),
                                                                        int(state[3]))
        self.bars += len(values)
        promised = self.mean if self.promised is None else self.promised
        return [BreakAlarm(int(bar), int(change), float(statistic), self.threshold, self.mean, float(live), self.null,
                           promised) for bar, change, statistic, live in found[:count]]

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, float | int]) -> BreakDetector:
        return cls(**raw)  # type: ignore[arg-type]


def block_resample(returns: np.ndarray, bars: int, rng: np.random.Generator, block: int = BLOCK_BARS) -> np.ndarray:
    """A stream of ``bars`` returns made of random blocks of ``returns`` (a stationary stream with their tails,
    flat runs and short-range dependence, and no break)."""
    starts = rng.integers(0, max(1, len(returns) - block), size=math.ceil(bars / block))
    return np.concatenate([returns[start:start + block] for start in starts])[:bars]


def alarms_per_10k(returns: np.ndarray, mean: float, sd: float, k: float, threshold: float) -> float:
    """Alarms per 10,000 bars of ``returns`` at ``threshold`` (false ones, on a break-free stream)."""
    found = np.zeros((0, 4))
    count = _cusum(np.asarray(returns, dtype=np.float64), mean, sd, k, threshold, np.zeros(4), 0, found)
    return count * 10_000 / len(returns)


def change_point(before: np.ndarray, live: np.ndarray, sd: float) -> int:
    """Where in ``live`` the champion's returns fell: the index of the first live bar after the split of ``before``
    followed by ``live`` into a higher mean and a lower one that the returns favour most (the classical estimator of
    one change in mean, the argmax of the cumulative deviations from the overall mean, Hinkley 1970), on returns
    standardized by ``sd`` and clipped as the test's are. 0 when the split falls in ``before`` (a champion that never
    earned live as it had there).

    ``before`` (the held-out window it was promoted on) stands for its returns before the break: without them a
    champion that began deciding at the break itself would be split somewhere in its losses.

    :param before: returns known to precede the live ones (its held-out window)
    :param live: its live returns, from its first deciding bar to the alarm
    :param sd: the spread the test standardizes by
    """
    values = np.clip(np.concatenate((before, live)) / sd, -CLIP, CLIP)
    if len(live) == 0 or len(values) < 2:
        return 0
    sums = np.cumsum(values)
    drift = sums[:-1] - np.arange(1, len(values)) / len(values) * sums[-1]  # above the line: higher before the split
    return max(0, int(np.argmax(drift)) + 1 - len(before))


def calibrate(reference: np.ndarray, false_alarms_per_10k: float = 0.5, seed: int = 0,
              replicates: int = REPLICATES, stream_bars: int = STREAM_BARS,
              null: Null = "promised") -> BreakDetector | None:
    """The detector for a champion whose per-bar returns on its reference bars were ``reference``; None without an
    edge to lose (a mean at or below zero, or no spread).

    The threshold is calibrated in a bootstrap world: each replicate draws a window like the champion's (blocks of
    ``reference``, as many bars), estimates the mean and spread from it as this function does, and runs that
    detector over a long break-free stream of other blocks: of ``reference`` itself for the ``"promised"`` null (so
    the error of estimating the edge from a few hundred bars is in the false-alarm rate, not only the stream's
    noise), of ``reference`` less its mean for ``"break_even"`` (a champion whose window was all luck: the worst
    case of that null, since one that earns anything rings less), of ``reference`` less ``1 - PROMISE_SHARE`` of its
    mean for ``"share"`` (a champion that earns exactly the share its centre holds it to).

    :param reference: the champion's per-bar returns on the bars it is calibrated on (its held-out window, then that
        and its first live bars)
    :param false_alarms_per_10k: the false-alarm rate to hold, over the replicates (0.5 leaves room under the 1 per
        10,000 bars a user can live with)
    :param seed: seeds the resampling (the same champion gets the same threshold)
    :param replicates: bootstrap replicates of the champion's window and a live stream
    :param stream_bars: bars of each replicate's live stream
    :param null: ``"promised"``: alarm when it earns less than ``reference`` showed; ``"break_even"``: alarm when it
        loses; ``"share"``: when it falls below :data:`PROMISE_SHARE` of what ``reference`` showed (a paper account
        counts such a crossing only where the champion is losing; for a reference it was selected on: see the
        module's docstring)
    """
    reference = np.asarray(reference, dtype=np.float64)
    mean, sd = float(np.mean(reference)), float(np.std(reference))
    if len(reference) < 2 * BLOCK_BARS or sd <= 0.0 or mean <= 0.0:
        return None
    if null not in ("promised", "break_even", "share"):
        raise ValueError(f"null: {null!r} is not 'promised', 'break_even' or 'share'")
    share = {"promised": 1.0, "break_even": 0.0, "share": PROMISE_SHARE}[null]  # of its mean the centre holds it to
    fall = 1.0 if null == "break_even" else share  # k: half the fall from the centre built to be seen fastest
    rng = np.random.default_rng(seed)
    live_truth = reference - (1.0 - share) * mean
    worlds = []
    for _ in range(replicates):
        window = block_resample(reference, len(reference), rng)
        window_mean, window_sd = float(np.mean(window)), float(np.std(window))
        if window_mean > 0.0 and window_sd > 0.0:  # a window without an edge would have made no detector
            worlds.append((block_resample(live_truth, stream_bars, rng), share * window_mean, window_sd,
                           0.5 * fall * window_mean / window_sd))
    bars = sum(len(stream) for stream, _, _, _ in worlds)

    def rate(threshold: float) -> float:
        alarms = sum(alarms_per_10k(stream, centre, spread, k, threshold) * len(stream) / 10_000
                     for stream, centre, spread, k in worlds)
        return alarms * 10_000 / bars

    low, high = 0.0, 1.0
    while rate(high) > false_alarms_per_10k:
        low, high = high, high * 2.0
    for _ in range(25):  # bisect to a threshold whose rate is just inside the target
        middle = 0.5 * (low + high)
        low, high = (middle, high) if rate(middle) > false_alarms_per_10k else (low, middle)
    return BreakDetector(mean=share * mean, sd=sd, k=0.5 * fall * mean / sd, threshold=high, null=null, promised=mean)


__all__ = ["BLOCK_BARS", "CLIP", "PROMISE_SHARE", "REFERENCE_BARS", "BreakAlarm", "BreakDetector", "Null",
           "alarms_per_10k", "block_resample", "calibrate", "change_point", "short_reference_rate"]
