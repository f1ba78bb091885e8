"""The run's own memory, ``run_state.json``: what is finished and what the run has learned.

SB3's zip holds a model, not a run. This file holds everything needed to carry on after a
crash or to extend a run: the fingerprint of the data and configuration it belongs to
(resuming under another config would mix two experiments), a record per finished
iteration, the early-stopping tracker, and which model is best. It is rewritten
atomically at the end of each iteration; in-iteration progress lives in the checkpoints.

Everything that reads a run (the trainer, the terminal's progress, the Prefect artifacts)
reads it through :class:`RunState`. Version 1 files (rltrader 0.1, where the cache switch
was ``cache.enabled``) are read and upgraded on the next save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltrader.atomic import write_json
from rltrader.config import (
    AccountConfig,
    Config,
    EnvConfig,
    InstrumentConfig,
    as_written_before,
    moved_cache_switch,
)
from rltrader.errors import UserInputError
from rltrader.records import BestModel, IterationRecord, OriginalThroughput, Record

STATE_VERSION = 2


def fingerprint(config: Config, data_sha256: str, fold: dict[str, Any] | None = None) -> dict[str, Any]:
    """What must match for a results directory to be resumed: data content and settings (and, for a
    walk-forward fold, which rows of the file it trains, validates and tests on)."""
    # runtime knobs, not the experiment: where the cache lives, how hard the machine works,
    # how failures are retried and where the server is, and how a search, a walk-forward or a
    # retrain would place and judge runs (each run's windows arrive in its fold); and how strictly
    # bars are checked (the data's SHA-256 already says which bars the run trained on)
    settings = config.model_dump(mode="json", exclude={"profiles": True, "cache": {"dir"}, "performance_mode": True,
                                                       "data": {"max_jump_mads"},
                                                       "orchestration": True, "tune": True,
                                                       "walk_forward": True, "retrain": True})
    return {"data_sha256": data_sha256, "config": _without_unused(settings), **({"fold": fold} if fold else {})}


def _without_unused(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings less the keys the run's algorithm never reads: a feed-forward run has no LSTM to skip
    around, so ``training.policy.observation_skip`` (added since, on by default) must not refuse to
    resume a feed-forward run written before it."""
    training = settings.get("training")
    if not (isinstance(training, dict) and training.get("algorithm") == "feedforward"
            and isinstance(training.get("policy"), dict) and "observation_skip" in training["policy"]):
        return settings
    policy = {key: value for key, value in training["policy"].items() if key != "observation_skip"}
    return {**settings, "training": {**training, "policy": policy}}


def _first_difference(old: Any, new: Any, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
    return f"{prefix} was {old!r}, now {new!r}"


def count_trials(iterations: list[IterationRecord]) -> int:
    """Every validation look the run took: the looks of each iteration, and with parallel candidates
    the looks of every candidate (the losers' looks were chances to be lucky too)."""
    total = 0
    for record in iterations:
        if record.candidates:
            looks = sum(candidate.evaluations for candidate in record.candidates)
            total += looks or record.evaluations * len(record.candidates)  # records from before looks were kept
        else:
            total += record.evaluations
    return total



def settings_as_trained(settings: dict[str, Any]) -> dict[str, Any]:
    """A run fingerprint's settings saved before keys were added, completed as those runs trained.

    Runs from before ``training.algorithm`` were all recurrent. Runs from before position sizing
    held fixed ``max_position_size`` units: they resume with ``--sizing units`` and are refused,
    naming ``env.sizing``, under today's default. On an instrument quoted in the account currency
    (XAUUSD) their arithmetic is unchanged, bit for bit; elsewhere rltrader 0.1 added
    quote-currency profits to the balance, which a resumed run now converts. Runs from before the
    learning study (:data:`~rltrader.config.ADDED_SINCE`) computed no calendar harmonics or signed volume,
    had no risk aversion and counted patience on raw looks."""
    settings = {section: as_written_before(section, value) if isinstance(value, dict) else value
                for section, value in settings.items()}
    if isinstance(settings.get("training"), dict) and "algorithm" not in settings["training"]:
        settings = {**settings, "training": {**settings["training"], "algorithm": "recurrent"}}
    if isinstance(settings.get("env"), dict) and "sizing" not in settings["env"]:
        env = EnvConfig()
        sized = {**settings["env"], "sizing": "units", "equity_fraction": env.equity_fraction, "lots": env.lots}
        settings = {**settings, "env": sized,
                    "account": settings.get("account", AccountConfig().model_dump(mode="json")),
                    "instrument": settings.get("instrument", InstrumentConfig().model_dump(mode="json"))}
    return _without_unused(settings)


class RunState(Record):
    """Finished iterations, early-stopping state and the best model of one run."""

    version: int = STATE_VERSION
    fingerprint: dict[str, Any]
    method: str
    iterations: list[IterationRecord] = []
    tracker: dict[str, Any] = {}
    best: BestModel | None = None
    preprocess_seconds: float = 0.0
    completed: bool = False
    trials: int = 0  # validation looks so far, every candidate's included: see count_trials
    original_throughput: OriginalThroughput | None = None  # the speedup estimate's basis, measured at the start

    @property
    def next_iteration(self) -> int:
        return len(self.iterations)

    def save(self, path: Path) -> None:
        self.version = STATE_VERSION
        self.trials = count_trials(self.iterations)
        write_json(path, self.to_json())

    @classmethod
    def parse(cls, raw: Any, path: Path) -> RunState:
        """A saved state of any version, upgraded to this one; a one-line error if it is not one."""
        if not isinstance(raw, dict):
            raise UserInputError(f"{path}: not a run state; move that results directory away "
                                 "or pass another --results_dir")
        if raw.get("version", 1) == 1:
            # version 1 kept the cache switch as cache.enabled in the fingerprint's settings
            fingerprint = dict(raw.get("fingerprint") or {})
            fingerprint["config"] = moved_cache_switch(fingerprint.get("config"))
            raw = {**raw, "version": STATE_VERSION, "fingerprint": fingerprint}
        settings = (raw.get("fingerprint") or {}).get("config")
        if isinstance(settings, dict):  # keys added since: as the runs that lack them trained
            raw = {**raw, "fingerprint": {**raw["fingerprint"], "config": settings_as_trained(settings)}}
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UserInputError(f"{path}: unreadable run state ({where}: {first['msg']}); move that results "
                                 "directory away or pass another --results_dir") from None

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        """The state at ``path``, or None where there is none yet (readers watching a run that starts)."""
        try:
            return cls.parse(json.loads(path.read_text(encoding="utf-8")), path)
        except (OSError, ValueError, UserInputError):  # not written yet: files are replaced whole, never torn
            return None

    @classmethod
    def load_or_create(cls, path: Path, expected: dict[str, Any], method: str) -> RunState:
        """The saved state when it belongs to the same data and config; a new one if none."""
        if not path.is_file():
            return cls(fingerprint=expected, method=method)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserInputError(
                f"{path}: unreadable run state; move that results directory away or pass another --results_dir"
            ) from None
        state = cls.parse(raw, path)
        if state.fingerprint != expected:
            difference = _first_difference(state.fingerprint, expected)
            raise UserInputError(
                f"{path.parent}: holds a run with other settings ({difference}); "
                "re-run with the same settings to resume, or pass another --results_dir"
            )
        return state


__all__ = ["STATE_VERSION", "RunState", "count_trials", "fingerprint"]
