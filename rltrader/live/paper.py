"""Paper trading: a bundle decides each new closed bar of a file and a paper account fills it, kill-safe.

One paper account is a directory (``results/paper/<name>/``):

- ``state.json``: the truth. The decision stream's state (features, LSTM, account), the ledger so far
  (one row per bar, keyed by bar time) and which bundle and file it follows. It is rewritten
  atomically after each batch of bars, so it always holds a whole number of bars: a process killed
  at any point (``kill -9`` included) leaves the last complete state, and the same command
  recomputes what was lost, bar for bar identically (every step is deterministic).
- ``ledger.csv``: the ledger for people and spreadsheets, rewritten from the state after it.
- ``equity.png`` and ``summary.json``: the paper equity against buy-and-hold (same costs and sizing)
  and against the backtest's test figures; written by :func:`write_paper_report`.

The account fills at the next bar's open with the backtest's own ledger arithmetic (the decision
stream runs the evaluator's kernels), so a paper account over a test split ends on the evaluator's
final equity (``bench/parity.py``). A bar is processed once: bars at or before the last processed
one are never traded again, and every later bar is, in order.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rltrader.atomic import atomic_path, remove_stray_temp_files, write_json, write_text
from rltrader.bundle import MANIFEST_FILE, Bundle, read_bundle
from rltrader.data.bar_arrays import BarArrays, bar_time
from rltrader.engine.kernels.accounts import OPEN_COLUMN, fill
from rltrader.env.market import ACTION_NAMES, CLOSE_COLUMN, COST, SWAP_LONG, SWAP_SHORT
from rltrader.errors import UserInputError
from rltrader.live.bars import parse_bar_time, read_bar_file
from rltrader.live.stand_aside import (
    STAND_ASIDE_DEFAULT,
    evidence_to_resume,
    requalifying_keep,
    sends_aside,
    stand_aside_start,
)
from rltrader.live.stream import DecisionStream, StepBatch
from rltrader.live.takeover import take_over
from rltrader.registry.breaks import (
    PROMISE_SHARE,
    REFERENCE_BARS,
    BreakDetector,
    calibrate,
    change_point,
    short_reference_rate,
)
from rltrader.registry.store import DECISION_FILE, Registry, open_registry
from rltrader.runtime.run_lock import LockOwner, RunDirectoryInUse, run_directory_lock

STATE_FILE = "state.json"
LEDGER_FILE = "ledger.csv"
SUMMARY_FILE = "summary.json"
PICTURE_FILE = "equity.png"
STATE_VERSION = 2  # 2: the features' state is the compiled program's (1: rings of closes, upgraded on load)
LONG = 2
#: The ledger's columns: the bar, what was filled at its open, the account at its close, the decision at its close.
LEDGER_COLUMNS = ("time", "open", "close", "filled", "units", "fill_price", "trade_cost", "swap", "pnl", "equity",
                  "buy_and_hold", "decision", "p_short", "p_flat", "p_long", "version", "stood_aside")
"""``version``: the registry version that decided at the bar, for an account following a model (else empty);
``stood_aside``: True where the account sent a flat order whatever ``decision`` was (after a break alarm,
:mod:`rltrader.live.stand_aside`)."""


class PaperError(UserInputError):
    """A paper account that cannot go on as asked (another bundle or file under the same name...)."""


@dataclass
class BuyAndHold:
    """The comparison account: long from the first fill and held, with the same costs and sizing."""

    held: int
    units: float
    entry: float
    equity: float

    def step(self, table: np.ndarray, t: int, fraction_sizing: bool, size: float) -> None:
        units, profit = fill(table, t, self.held, LONG, self.units, self.entry, self.equity, fraction_sizing, size)
        if self.held != LONG:
            self.entry = float(table[t, OPEN_COLUMN])
        self.held, self.units, self.equity = LONG, float(units), self.equity + profit


class PaperAccount:
    """A named paper account following one bundle on one bar file.

    :param root: the account's directory (``results/paper/<name>``)
    :param bundle: the verified bundle that decides
    :param data_path: the bar file it follows (a terminal export that grows)
    :param start: bar time (ns) of the first decision; None: the file's last bar when the account opens
    :param follows: the registry of the model whose champion the account follows (None: ``bundle`` always)
    :param version: with ``follows``, the version ``bundle`` is (the one that decided the last bar)
    :param stand_aside: with ``follows``, send flat orders from the bar after a break alarm on the champion until
        the evidence is in (:mod:`rltrader.live.stand_aside`); None: as the account was set (a new one:
        :data:`~rltrader.live.stand_aside.STAND_ASIDE_DEFAULT`)
    """

    def __init__(self, root: Path, bundle: Bundle, data_path: Path, start: int | None = None,
                 follows: Registry | None = None, version: int | None = None,
                 stand_aside: bool | None = None) -> None:
        self.root, self.bundle, self.data_path = root, bundle, data_path
        self.follows, self.version = follows, version
        self.switches: list[dict[str, Any]] = []
        self.watch: BreakDetector | None = None  # the break test on the champion's live returns (when following)
        self.watch_version: int | None = None
        self.watch_start_row = 0  # the first ledger row the watched version decided
        self.watch_monitor_row = 0  # the first row the test runs on (since its last calibration)
        self.watch_full = False  # calibrated on REFERENCE_BARS bars (else on the held-out ones: is it losing?)
        self._held_out: tuple[int, np.ndarray] | None = None
        self.alarms: list[dict[str, Any]] = []
        self.unconfirmed: list[dict[str, Any]] = []  # crossings the dated fall did not bear out (_watch_rows)
        self.watch_paused_by: dict[str, Any] | None = None  # the alarm that paused the test (stand_aside_start's form)
        self.stand_aside_on_break = STAND_ASIDE_DEFAULT and follows is not None  # a stored account's setting wins
        self.standing_aside: dict[str, Any] | None = None  # while flat after an alarm: stand_aside_start's record
        self.stood_aside: list[dict[str, Any]] = []  # the periods stood aside that ended, with why
        self.bundle_digest = (bundle.root / MANIFEST_FILE).read_bytes()
        self.stream = DecisionStream(bundle, start)
        self.ledger: dict[str, list[Any]] = {column: [] for column in LEDGER_COLUMNS}
        self.buy_and_hold: BuyAndHold | None = None
        self.created = not (root / STATE_FILE).exists()
        if not self.created:
            self._load()
        if stand_aside is not None:
            self.stand_aside_on_break = stand_aside and follows is not None
        self.start_requested = start

    # ------------------------------------------------------------------ persistence
    def _load(self) -> None:
        path = self.root / STATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise PaperError(f"{path}: unreadable paper state; remove the directory to start the account again") \
                from None
        if raw.get("version") == 1:
            raw = self._upgraded_from_version_1(raw)
        if raw.get("version") != STATE_VERSION:
            raise PaperError(f"{path}: paper state version {raw.get('version')!r}; this rltrader reads "
                             f"{STATE_VERSION}")
        if raw.get("model") != (None if self.follows is None else self.follows.name):
            raise PaperError(f"paper account {self.root.name!r} follows "
                             + (f"model {raw['model']!r}; pass --model {raw['model']}" if raw.get("model") else
                                f"the bundle {raw['bundle']}; pass --bundle {raw['bundle']}")
                             + ", or another --name")
        if raw["bundle_manifest"] != self.bundle_digest.decode("utf-8"):
            raise PaperError(f"paper account {self.root.name!r} trades another bundle ({raw['bundle']}); pass that "
                             "bundle, or another --name for this one")
        if Path(raw["data_path"]).resolve() != self.data_path.resolve():
            raise PaperError(f"paper account {self.root.name!r} follows {raw['data_path']}; pass that file, or "
                             "another --name for this one")
        self.stream.restore(raw["stream"])
        rows = len(raw["ledger"]["time"])
        self.ledger = {column: list(raw["ledger"].get(column, [""] * rows)) for column in LEDGER_COLUMNS}
        self.switches = list(raw.get("switches", []))
        watch = raw.get("watch") or {}  # absent in states written before the break test
        self.watch = None if watch.get("detector") is None else BreakDetector.from_json(watch["detector"])
        self.watch_version, self.watch_start_row = watch.get("version"), int(watch.get("start_row", 0))
        self.watch_monitor_row = int(watch.get("monitor_row", 0))
        self.watch_full = bool(watch.get("full", False))
        self.alarms = list(raw.get("alarms", []))
        self.unconfirmed = list(watch.get("unconfirmed", []))
        self.watch_paused_by = watch.get("paused_by")
        aside = raw.get("stand_aside") or {}  # absent in states written before standing aside
        self.stand_aside_on_break = bool(aside.get("on_break", False))
        self.standing_aside, self.stood_aside = aside.get("standing"), list(aside.get("periods", []))
        self.buy_and_hold = None if raw["buy_and_hold"] is None else BuyAndHold(**raw["buy_and_hold"])

    def _upgraded_from_version_1(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A state written before the features were compiled from their declarations (version 1) kept its own
        feature state layout: the features' state is rebuilt by streaming the file's bars up to the last processed
        one (the warm-up and every processed bar, as the account first streamed them; a price the check refused
        is refused again); the policy's state, the account and the ledger are kept as they were."""
        previous = raw["stream"]["previous"]
        if previous is None:
            return {**raw, "version": STATE_VERSION, "stream": {**raw["stream"], "features": None}}
        last = int(previous[0])
        bars = read_bar_file(self.data_path, self.bundle.description, need_history=False).bars
        upto = int(np.searchsorted(bars.timestamps, last, side="right"))
        if upto == 0 or bars.timestamps[upto - 1] != last:
            raise PaperError(f"{self.data_path}: paper account {self.root.name!r} was written by an older rltrader and "
                             f"is brought up to date from the bars it processed, but the file no longer holds its last "
                             f"bar {bar_time(last)}; pass the file it followed")
        replay = DecisionStream(self.bundle)
        replay.advance(bars.rows(0, upto))
        return {**raw, "version": STATE_VERSION,
                "stream": {**raw["stream"], "features": {"state": replay.features.state.tolist()}}}

    def _save(self) -> None:
        """The state in one atomic write, then the CSV from it (a kill between them is mended on the next run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / STATE_FILE, {
            "version": STATE_VERSION, "bundle": str(self.bundle.root),
            "bundle_manifest": self.bundle_digest.decode("utf-8"), "data_path": str(self.data_path),
            "stream": self.stream.state(), "ledger": self.ledger,
            "buy_and_hold": None if self.buy_and_hold is None else self.buy_and_hold.__dict__,
            "model": None if self.follows is None else self.follows.name,
            "registry_dir": None if self.follows is None else str(self.follows.dir.parent),
            "model_version": self.version, "switches": self.switches,
            "watch": {"detector": None if self.watch is None else self.watch.to_json(), "version": self.watch_version,
                      "start_row": self.watch_start_row, "monitor_row": self.watch_monitor_row,
                      "full": self.watch_full, "unconfirmed": self.unconfirmed, "paused_by": self.watch_paused_by},
            "alarms": self.alarms,
            "stand_aside": {"on_break": self.stand_aside_on_break, "standing": self.standing_aside,
                            "periods": self.stood_aside},
        })
        self.write_ledger_csv()

    def write_ledger_csv(self) -> Path:
        return write_text(self.root / LEDGER_FILE, self.ledger_frame().to_csv(index=False, float_format="%.10g"))

    def ledger_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.ledger, columns=list(LEDGER_COLUMNS))

    # ------------------------------------------------------------------ the work
    @property
    def last_time(self) -> int | None:
        return self.stream.last_time

    def new_bars(self) -> BarArrays:
        """The file's bars after the last processed one; on a new account, all of them (the warm-up)."""
        bar_file = read_bar_file(self.data_path, self.bundle.description, need_history=self.created)
        bars = bar_file.bars
        if self.created and self.stream.start is None:
            self.stream.start = int(bars.timestamps[-1])  # decide from the newest bar on: a forward test
        self._check_history(bars)
        return bar_file.after(self.last_time)

    def _check_history(self, bars: BarArrays) -> None:
        """Refuse a file that gained a bar at or before the last processed one (it would never be traded)."""
        if self.last_time is None or not self.ledger["time"]:
            return
        first = np.datetime64(self.ledger["time"][0]).astype("datetime64[ns]").astype(np.int64)
        since = bars.timestamps[(bars.timestamps >= first) & (bars.timestamps <= self.last_time)]
        known = np.array(self.ledger["time"], dtype="datetime64[ns]").astype(np.int64)
        unknown = np.setdiff1d(since, known)
        if len(unknown):
            raise PaperError(f"{self.data_path}: bar {bar_time(int(unknown[0]))} is not later than the last processed "
                             f"bar {bar_time(self.last_time)} and was not there when it was processed; a new bar must "
                             "come after the last one; remove it from the file")

    def process(self, bars: BarArrays) -> StepBatch:
        """Decide and fill ``bars`` (later than the last processed bar), append them to the ledger, test the
        champion's live returns for a break, save; then tell the registry of a new alarm.

        An account set to stand aside goes flat from the bar after an alarm that finds the champion losing
        (:func:`~rltrader.live.stand_aside.sends_aside`), as it would had the bars come one at a time: a batch in
        which such an alarm rang is processed again from its start, up to the alarm's bar as the champion decided
        it, then standing aside (every step is deterministic, so the first part is the same)."""
        waiting = self.follows is not None and (self.standing_aside is not None or self.watch_paused_by is not None)
        registry = Registry(self.follows.dir.parent, self.follows.name) if waiting else None  # read once a step
        self._start_watch(registry)
        self._resume_on_evidence(registry)
        before = len(self.ledger["time"])
        armed = self.stand_aside_on_break and self.standing_aside is None and self.follows is not None
        snapshot = self._snapshot() if armed else None
        batch = self.stream.advance(bars, stand_aside=self.standing_aside is not None)
        self._append(batch, stood_aside=self.standing_aside is not None)
        alarms_before = len(self.alarms)
        self._watch_rows(before)
        losing = [alarm for alarm in self.alarms[alarms_before:] if sends_aside(alarm)]
        if snapshot is not None and losing:
            batch = self._stand_aside_from(losing[0], bars, snapshot, before)
        self._save()
        self.created = False
        self._register_alarms()
        return batch

    def _snapshot(self) -> dict[str, Any]:
        """What :meth:`process` changes, to process a batch again (JSON-able copies)."""
        return json.loads(json.dumps({
            "stream": self.stream.state(), "alarms": self.alarms, "unconfirmed": self.unconfirmed,
            "buy_and_hold": None if self.buy_and_hold is None else self.buy_and_hold.__dict__,
            "watch": None if self.watch is None else self.watch.to_json(),
            "watch_full": self.watch_full, "watch_monitor_row": self.watch_monitor_row,
            "watch_paused_by": self.watch_paused_by}))

    def _stand_aside_from(self, alarm: dict[str, Any], bars: BarArrays, snapshot: dict[str, Any],
                          before: int) -> StepBatch:
        """Process ``bars`` again from ``snapshot``: the champion's decisions up to ``alarm``'s bar, then flat
        orders; returns the batch of the bars stood aside (or of all bars when the alarm rang at the last)."""
        self.stream.restore(snapshot["stream"])
        self.alarms, self.unconfirmed = snapshot["alarms"], snapshot["unconfirmed"]
        self.buy_and_hold = None if snapshot["buy_and_hold"] is None else BuyAndHold(**snapshot["buy_and_hold"])
        self.watch = None if snapshot["watch"] is None else BreakDetector.from_json(snapshot["watch"])
        self.watch_full, self.watch_monitor_row = snapshot["watch_full"], snapshot["watch_monitor_row"]
        self.watch_paused_by = snapshot["watch_paused_by"]
        for column in LEDGER_COLUMNS:
            del self.ledger[column][before:]
        stamp = int(np.datetime64(alarm["time"]).astype("datetime64[ns]").astype(np.int64))
        split = int(np.searchsorted(bars.timestamps, stamp, side="right"))
        batch = self.stream.advance(bars.rows(0, split))
        self._append(batch)
        self._watch_rows(before)
        assert self.alarms[-1]["time"] == alarm["time"], "processed again, the same bars ring the same alarms"
        self.standing_aside = stand_aside_start(alarm)
        if split == len(bars):
            return batch
        rest = self.stream.advance(bars.rows(split, len(bars)), stand_aside=True)
        self._append(rest, stood_aside=True)
        return rest

    def _resume_on_evidence(self, registry: Registry | None) -> None:
        """Trade the champion again when a retrain after the alarm kept it on held-out bars where it earned.

        :param registry: the followed registry as read for this step (None when nothing waits for evidence)"""
        if self.standing_aside is None or registry is None:
            return
        reason = evidence_to_resume(registry, self.standing_aside)
        if reason is not None:
            self._end_standing_aside(reason)

    def _end_standing_aside(self, reason: str) -> None:
        assert self.standing_aside is not None
        until = self.ledger["time"][-1] if self.ledger["time"] else None
        self.stood_aside.append({**self.standing_aside, "until": until, "reason": reason})
        self.standing_aside = None

    def _start_watch(self, registry: Registry | None = None) -> None:
        """A newly deciding champion is watched at once: calibrated on the held-out returns it was selected on, the
        test asks whether it is losing (that window overstates what it earns live), by holding it to a share of its
        promise (the ``"share"`` null: a CUSUM that sees a fall below half the promise, whose crossings count only
        where the champion is losing since the fall it dates; a test centred on breaking even cannot see a
        champion that earned half its promise and loses as little after a break: ``bench/retrain_break.py`` missed
        two of three such breaks), at a stricter rate while they are fewer than the bars that show a strategy's
        swings; once
        :data:`~rltrader.registry.breaks.REFERENCE_BARS` of its returns are known, most of them live, it is held to
        what it earned (:meth:`_watch_rows`), unless it raised an alarm before.

        After an alarm the test on that champion pauses (:meth:`_watch_rows`) until a retrain keeps it on held-out
        bars from the dated fall on, where it earned (:func:`~rltrader.live.stand_aside.requalifying_keep`): then it
        is watched again, calibrated on its returns there and asked whether it is losing.

        :param registry: the followed registry as read for this step (None when nothing waits for evidence)"""
        if self.follows is None or self.version is None:
            return
        if self.watch_version == self.version:
            if registry is not None:
                self._watch_again_on_evidence(registry)
            return
        self.watch_version = self.version
        self.watch_start_row = self.watch_monitor_row = len(self.ledger["time"])
        self.watch_paused_by = None  # the pause was the alarmed champion's: a new one is tested from scratch
        held_out = self._held_out_returns()
        self.watch_full = len(held_out) >= REFERENCE_BARS
        self.watch = calibrate(held_out, false_alarms_per_10k=short_reference_rate(len(held_out)),
                               seed=self.watch_version, null="share")

    def _watch_again_on_evidence(self, registry: Registry) -> None:
        """Restart a paused test once a retrain re-qualified its champion after the alarm (see :meth:`_start_watch`)."""
        if self.watch_paused_by is None:
            return
        keep = requalifying_keep(registry, self.watch_paused_by)
        if keep is None:
            return
        returns = self._decision_returns(keep.version, "champion")
        self.watch = calibrate(returns, false_alarms_per_10k=short_reference_rate(len(returns)), seed=keep.version,
                               null="share")
        self.watch_start_row = self.watch_monitor_row = len(self.ledger["time"])
        self.watch_paused_by = None

    def _held_out_returns(self) -> np.ndarray:
        """The watched version's per-bar returns on the held-out window it was promoted on (read once per version:
        a followed file may bring a bar at a time)."""
        assert self.follows is not None and self.watch_version is not None
        if self._held_out is None or self._held_out[0] != self.watch_version:
            self._held_out = (self.watch_version, self._decision_returns(self.watch_version, "challenger"))
        return self._held_out[1]

    def _decision_returns(self, version: int, side: str) -> np.ndarray:
        """Per-bar returns of ``side`` ("challenger" or "champion") on the held-out bars of retrain ``version``'s
        decision (none where the version has no decision file)."""
        assert self.follows is not None
        decision = self.follows.version_dir(version) / DECISION_FILE
        returns = json.loads(decision.read_text(encoding="utf-8"))["returns"][side] if decision.is_file() else []
        return np.asarray(returns, dtype=np.float64)

    def _row_returns(self, first: int) -> np.ndarray:
        """The account's per-bar returns of ledger rows ``first ..`` (each over the row before it)."""
        equity = np.asarray(self.ledger["equity"][max(first, 1) - 1:], dtype=np.float64)
        return equity[1:] / equity[:-1] - 1.0 if len(equity) > 1 else np.zeros(0)

    def _watch_rows(self, before: int) -> None:
        """Feed the new ledger rows' returns to the break test; keep each alarm; calibrate again on the held-out and
        the first live returns once :data:`~rltrader.registry.breaks.REFERENCE_BARS` are known, if no alarm rang and
        they show an edge to hold it to. Where they show none (a break before the test rang puts its losses in that
        record: a momentum replay's champion lost for 3,000 bars after one, unwatched from bar 1,400 on), the first
        test goes on asking whether it is losing.

        A crossing is an alarm only when the fall it dates bears it out: the live mean since the change point
        (:meth:`_date_change`) is below what the test holds the champion to (its promise; zero, breaking even, for
        a champion known by its held-out window: :attr:`~rltrader.registry.breaks.BreakAlarm.confirming_mean`). The
        CUSUM crosses on a run of losses; on a break-free market a champion also has such runs inside stretches
        that earned, where the change point finds no lower mean (a replay without a break rang three times in ten
        days on a champion earning +0.5 to +1.0 bp per bar since the dated fall, against a break-even test). Such
        a crossing is kept in ``unconfirmed``: not registered, not sent aside, not counted as an alarm.

        After an alarm the test on that champion pauses: the break is known and its retrain is under way, and the
        same test, restarted from zero, would ring again and again on a champion that earns less than it promised
        (a replay without a break rang twice in two days on one). It resumes when a retrain re-qualifies the
        champion (:meth:`_watch_again_on_evidence`), or a new champion is watched from scratch."""
        if self.watch_version is None or self.follows is None or self.standing_aside is not None \
                or self.watch_paused_by is not None:
            return  # standing aside, the account's returns are not the champion's; paused, the break is known
        if self.watch is not None:
            first = max(before, self.watch_monitor_row, 1)
            self.watch.bars = first - self.watch_monitor_row  # rows the test saw since its calibration
            for alarm in self.watch.update(self._row_returns(first)):
                row = self.watch_monitor_row + alarm.bar
                change, live_mean = self._date_change(row)
                record = {**alarm.to_json(), "live_mean": live_mean, "time": self.ledger["time"][row],
                          "change_time": self.ledger["time"][change], "version": self.watch_version,
                          "registered": False}
                if live_mean >= alarm.confirming_mean:
                    self.unconfirmed.append(record)
                    continue
                self.alarms.append(record)
                self.watch_paused_by = stand_aside_start(record)  # the break is known: no more alarms on it
                break
        alarmed = any(alarm["version"] == self.watch_version for alarm in self.alarms)
        if self.watch_full or alarmed:
            return
        reference = np.concatenate((self._held_out_returns(), self._row_returns(self.watch_start_row)))
        if len(reference) >= REFERENCE_BARS:
            self.watch_full = True
            earned = calibrate(reference, seed=self.watch_version)
            if earned is not None:  # no edge in its record to hold it to: the first test goes on asking if it loses
                self.watch, self.watch_monitor_row = earned, len(self.ledger["time"])

    def _date_change(self, row: int) -> tuple[int, float]:
        """The ledger row an alarm at ``row`` dates the break to (:func:`~rltrader.registry.breaks.change_point` on
        the watched version's held-out returns and its live ones up to ``row``), and its live mean since then."""
        assert self.watch is not None
        first = max(self.watch_start_row, 1)  # the first row with a return
        live = self._row_returns(first)[:row - first + 1]
        change = first + change_point(self._held_out_returns(), live, self.watch.sd)
        return change, float(np.mean(live[change - first:]))

    def _register_alarms(self) -> None:
        """Write the first alarm on each champion to its registry's events (later ones stay in the account's state:
        the break is known); a registry busy with a retrain gets it at the next bar."""
        if self.follows is None:
            return
        told = {alarm["version"] for alarm in self.alarms if alarm["registered"]}
        pending = [alarm for alarm in self.alarms if not alarm["registered"] and alarm["version"] not in told]
        if not pending:
            return
        alarm = pending[0]
        try:
            with self.follows.writing() as registry:
                registry.record("break_alarm", alarm["version"], registry.file.champion,
                                alarm_reason(alarm, self.root.name),
                                evidence={key: value for key, value in alarm.items() if key != "registered"})
        except RunDirectoryInUse:
            return
        for each in self.alarms:
            if each["version"] == alarm["version"]:
                each["registered"] = True  # this one is told; the later ones on the same version need not be
        self._save()

    def follow_champion(self) -> dict[str, Any] | None:
        """Switch to the registry's champion if it changed since the last bar (:mod:`rltrader.live.takeover`),
        carrying the position; saved at once. Returns the switch, or None when nothing changed."""
        if self.follows is None:
            return None
        registry = Registry(self.follows.dir.parent, self.follows.name)
        champion = registry.file.champion
        if champion is None or champion == self.version:
            return None
        bundle = registry.bundle(champion)
        if self.last_time is None:  # nothing decided yet: the champion simply opens the account
            self.stream, self.bundle, self.version = DecisionStream(bundle, self.stream.start), bundle, champion
            self.bundle_digest = (bundle.root / MANIFEST_FILE).read_bytes()
            return None
        bars = read_bar_file(self.data_path, bundle.description).bars
        scored_from = registry.version(champion).windows["holdout"].start
        self.stream = take_over(self.stream, bundle, bars, scored_from)
        switch = {"after_bar": bar_time(self.last_time), "from_version": self.version, "to_version": champion,
                  "reason": registry.file.events[-1].reason if registry.file.events else ""}
        self.switches.append(switch)
        if self.standing_aside is not None:
            self._end_standing_aside(f"v{champion} took over")
        self.bundle, self.version = bundle, champion
        self.bundle_digest = (bundle.root / MANIFEST_FILE).read_bytes()
        self._save()
        return switch

    def _append(self, batch: StepBatch, stood_aside: bool = False) -> None:
        start = self.stream.start
        size, fraction = float(self.stream.sizing[1]), bool(self.stream.sizing[0])
        table = np.vstack([batch.previous_row, batch.table])
        units_before = self.ledger["units"][-1] if self.ledger["units"] else 0.0
        for j in range(len(batch)):
            if start is not None and batch.timestamps[j] < start:
                continue
            row = table[j + 1]
            if batch.filled[j]:
                if self.buy_and_hold is None:
                    self.buy_and_hold = BuyAndHold(held=1, units=0.0, entry=0.0,
                                                   equity=float(self.stream.env.initial_balance))
                self.buy_and_hold.step(table, j + 1, fraction, size)
            units = float(batch.units[j])
            changed = batch.filled[j] and units != units_before
            swap = (units_before * row[SWAP_LONG] if units_before > 0 else -units_before * row[SWAP_SHORT]) \
                if batch.filled[j] else 0.0
            action = int(batch.actions[j])
            values = {
                "time": bar_time(int(batch.timestamps[j])), "open": float(row[OPEN_COLUMN]),
                "close": float(row[CLOSE_COLUMN]),
                "filled": ACTION_NAMES[int(batch.held[j])] if batch.filled[j] else "",
                "units": units, "fill_price": float(row[OPEN_COLUMN]) if changed else None,
                "trade_cost": float(abs(units - units_before) * row[COST]) if batch.filled[j] else 0.0,
                "swap": float(swap) + 0.0, "pnl": float(batch.profits[j]), "equity": float(batch.equity[j]),
                "buy_and_hold": float(self.buy_and_hold.equity if self.buy_and_hold is not None
                                      else self.stream.env.initial_balance),
                "decision": ACTION_NAMES[action] if action >= 0 else "",
                "p_short": _number(batch.probabilities[j, 0]), "p_flat": _number(batch.probabilities[j, 1]),
                "p_long": _number(batch.probabilities[j, 2]),
                "version": "" if self.version is None else self.version, "stood_aside": stood_aside,
            }
            for column in LEDGER_COLUMNS:
                self.ledger[column].append(values[column])
            units_before = units


def alarm_reason(alarm: dict[str, Any], account: str) -> str:
    """A break alarm in one sentence, with its evidence: what the registry's event and the terminal say."""
    if alarm.get("null") in ("break_even", "share"):  # asked whether it is losing: its promise was a selected window's
        against = "breaking even" if alarm["null"] == "break_even" else f"{PROMISE_SHARE:g} of that"
        fell = (f"v{alarm['version']} is losing (mean {alarm['live_mean'] * 1e4:+.2f} bp per bar since "
                f"{alarm['change_time']}, promoted on {alarm['promised'] * 1e4:+.2f} bp; tested against {against}")
    else:
        fell = (f"the live returns of v{alarm['version']} fell below what it was promoted on (mean "
                f"{alarm['live_mean'] * 1e4:+.2f} bp per bar since {alarm['change_time']}, expected "
                f"{alarm['expected_mean'] * 1e4:+.2f} bp")
    return (f"paper account {account!r}: {fell}; CUSUM {alarm['statistic']:.1f} > {alarm['threshold']:.1f} at "
            f"{alarm['time']}); the champion stays until a retrain decides")


@contextlib.contextmanager
def holding(account: PaperAccount, owner: LockOwner | None = None) -> Iterator[PaperAccount]:
    """Hold the account's directory for the block: one process per paper account (a second exits at once,
    naming the first); a holder killed with ``kill -9`` frees it, and its half-written temporary files go.

    :param owner: the run this process trades for (the Prefect layer's flow run), told about a dead holder
    """
    with run_directory_lock(account.root, remedy="pass another --name", holder="paper trader", what="paper account",
                            owner=owner):
        remove_stray_temp_files(account.root)
        yield account


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def open_paper_account(bundle_dir: str | Path | None, data_path: str | Path, name: str, paper_dir: str | Path,
                       start: str | None = None, model: str | None = None,
                       registry_dir: str | Path = "results/registry", stand_aside: bool | None = None) -> PaperAccount:
    """The paper account ``name`` under ``paper_dir``: opened again as it was left, or opened new.

    :param bundle_dir: the bundle that decides (None with ``model``)
    :param data_path: the bar file to follow
    :param name: the account's name (its directory under ``paper_dir``)
    :param paper_dir: where paper accounts live (default ``results/paper``)
    :param start: first bar to decide on (a time such as ``2025-01-02 00:00``), for a new account; default: the
        file's last bar when the account opens
    :param model: follow this registry model's champion instead of a fixed bundle: the account switches to a
        newly promoted (or rolled back) champion at the next bar, carrying its position
    :param registry_dir: where model registries live
    :param stand_aside: with ``model``, go flat from the bar after a break alarm on the champion until a retrain
        has the evidence (:mod:`rltrader.live.stand_aside`); None: as the account was set (a new account:
        :data:`~rltrader.live.stand_aside.STAND_ASIDE_DEFAULT`)
    """
    if not name or any(part in name for part in ("/", "\\", "..")):
        raise PaperError(f"--name {name!r}: use a plain name such as demo")
    if (bundle_dir is None) == (model is None):
        raise PaperError("pass either --bundle (a fixed model) or --model (a registry model's champion)")
    if stand_aside and model is None:
        raise PaperError("--stand_aside waits for a retrain after a break alarm: it needs --model (a registry model's "
                         "champion), not --bundle")
    root, path = Path(paper_dir) / name, Path(data_path)
    if model is None:
        return PaperAccount(root, read_bundle(bundle_dir), path, parse_bar_time(start))
    registry = open_registry(registry_dir, model)
    version = _saved_version(root)
    if version is None:
        registry.champion_bundle()  # a model without a champion yet: one line saying to retrain first
        version = registry.file.champion
    return PaperAccount(root, registry.bundle(version), path, parse_bar_time(start), registry, version, stand_aside)


def _saved_version(root: Path) -> int | None:
    """The registry version that decided an existing account's last bar (None for a new account)."""
    try:
        return json.loads((root / STATE_FILE).read_text(encoding="utf-8")).get("model_version")
    except (OSError, ValueError):
        return None


def paper_summary(account: PaperAccount) -> dict[str, Any]:
    """The account's figures against buy-and-hold and the backtest's test figures."""
    from rltrader.evaluation.metrics import max_drawdown
    from rltrader.evaluation.significance import sharpe_estimate

    frame = account.ledger_frame()
    about = account.bundle.description
    initial = float(account.stream.env.initial_balance)
    alarms = [alarm for alarm in account.alarms if alarm["version"] == account.version]  # on the deciding version
    test = about.figures.get("test", {})
    summary: dict[str, Any] = {"name": account.root.name, "bundle": str(account.bundle.root),
                               "data_path": str(account.data_path), "bars": len(frame),
                               "model": None if account.follows is None else account.follows.name,
                               "version": account.version, "switches": list(account.switches),
                               "break_alarms": {"count": len(alarms), "first": None if not alarms else
                                                alarm_reason(alarms[0], account.root.name)},
                               "stand_aside": {"on_break": account.stand_aside_on_break,
                                               "standing": account.standing_aside, "periods": account.stood_aside},
                               "watch": None if account.watch is None else {
                                   "version": account.watch_version, "expected_mean": account.watch.mean,
                                   "null": account.watch.null,
                                   "threshold": account.watch.threshold, "statistic": account.watch.statistic},
                               "backtest_test": {key: test.get("agent", {}).get(key) for key in
                                                 ("total_return", "sharpe", "sharpe_interval", "max_drawdown")}}
    if len(frame) == 0:
        return summary
    span = pd.Timestamp(frame["time"].iloc[-1]) - pd.Timestamp(frame["time"].iloc[0])
    data = about.training_data
    years = (pd.Timestamp(data.end) - pd.Timestamp(data.start)).total_seconds() / (365.25 * 86400)
    bars_per_year = (data.bars - 1) / years if years > 0 else float("nan")
    for label, column in (("paper", "equity"), ("buy_and_hold", "buy_and_hold")):
        equity = np.concatenate(([initial], frame[column].to_numpy(dtype=float)))
        returns = equity[1:] / equity[:-1] - 1.0  # as the backtest's metrics count them
        entry: dict[str, Any] = {"final_equity": float(equity[-1]), "total_return": float(equity[-1] / initial - 1),
                                 "max_drawdown": float(max_drawdown(equity))}
        if len(returns) > 2 and np.std(returns) > 0:
            estimate = sharpe_estimate(returns, bars_per_year)
            entry.update(sharpe=estimate.sharpe, sharpe_interval=[estimate.low, estimate.high])
        summary[label] = entry
    summary.update(first_bar=frame["time"].iloc[0], last_bar=frame["time"].iloc[-1], span_days=span.total_seconds()
                   / 86400, trades=int((frame["fill_price"].notna()).sum()), position=frame["filled"].replace(
                       "", np.nan).ffill().fillna("flat").iloc[-1], next_decision=frame["decision"].iloc[-1])
    return summary


def write_paper_report(account: PaperAccount) -> dict[str, Path]:
    """``summary.json`` and ``equity.png`` (paper vs buy-and-hold, and the backtest's test return as a pace line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = paper_summary(account)
    frame = account.ledger_frame()
    figure, axis = plt.subplots(figsize=(9, 4.2))
    if len(frame):
        times = pd.to_datetime(frame["time"])
        initial = float(account.stream.env.initial_balance)
        axis.plot(times, frame["equity"], label="paper account", color="tab:blue", linewidth=1.4)
        axis.plot(times, frame["buy_and_hold"], label="buy and hold (same costs)", color="tab:gray", linewidth=1.0)
        test = account.bundle.description.figures.get("test", {}).get("agent", {})
        if test.get("total_return") is not None and test.get("span_days"):
            days = (times - times.iloc[0]).dt.total_seconds() / 86400
            pace = initial * (1 + test["total_return"]) ** (days / test["span_days"])
            axis.plot(times, pace, linestyle="--", color="tab:orange", linewidth=1.0,
                      label=f"backtest test pace ({100 * test['total_return']:+.1f}% over "
                            f"{test['span_days']:.0f} days)")
        axis.axhline(initial, color="black", linewidth=0.5)
    about = account.bundle.description
    axis.set_title(f"Paper account {account.root.name}: {about.symbol or 'unknown symbol'}, {len(frame):,} bars",
                   wrap=True)
    axis.set_ylabel(f"equity ({about.account.get('currency', '')})")
    axis.legend(loc="best", fontsize=8)
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    picture = account.root / PICTURE_FILE
    with atomic_path(picture) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return {"summary": write_json(account.root / SUMMARY_FILE, summary), "picture": picture}


__all__ = ["LEDGER_COLUMNS", "LEDGER_FILE", "PICTURE_FILE", "PaperAccount", "PaperError", "STATE_FILE",
           "SUMMARY_FILE", "alarm_reason", "holding", "open_paper_account", "paper_summary", "write_paper_report"]
