"""Performance mode: quiet or performance, switched while training runs.

The user flips ``settings.json`` (``rltrader mode performance``, an editor, or a scheduled
Prefect deployment) and the running training applies it before its next update, never
in the middle of one: ``ModeSwitcher`` is one of the trainer's per-update hooks. Quiet
keeps the configured batch and epochs, uses fewer torch threads and lowers the process
priority, so the user's foreground work keeps its speed; performance multiplies batch and
epochs and uses every core.

Reading the file before every update must cost nothing and must never stop training: it
is re-parsed only when its stat changes (the atomic writer always makes a new inode), and
a missing, empty, corrupt or unknown setting means quiet, with one warning per distinct
problem rather than one per update.

What the running training applied is written to ``<run>/performance_mode.json`` (read by
``rltrader mode status``); every update's mode, batch, epochs, threads and timesteps/s
are recorded by the trainer's own hook (:mod:`rltrader.runtime.update_metrics`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch

from rltrader.atomic import write_json
from rltrader.config import ModeConfig, PerformanceModeConfig
from rltrader.runtime.hooks import UpdateHook

logger = logging.getLogger(__name__)

Mode = Literal["quiet", "performance"]
MODES: tuple[Mode, ...] = ("quiet", "performance")
SETTINGS_KEY = "performance_mode"
STATUS_FILE = "performance_mode.json"


@dataclass(frozen=True)
class SettingsReading:
    """The mode a settings file asks for, and what was wrong with it (None if nothing)."""

    mode: Mode
    problem: str | None = None


def parse_settings(path: Path) -> SettingsReading:
    """``{"performance_mode": "quiet" | "performance"}``; anything else reads as quiet, with the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SettingsReading("quiet", f"{path} not found")
    except OSError as error:
        return SettingsReading("quiet", f"{path} cannot be read ({error.strerror})")
    if not text.strip():
        return SettingsReading("quiet", f"{path} is empty")
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        return SettingsReading("quiet", f"{path} is not valid JSON ({error.msg} at line {error.lineno})")
    if not isinstance(settings, dict) or SETTINGS_KEY not in settings:
        return SettingsReading("quiet", f"{path} has no {SETTINGS_KEY!r} key")
    value = settings[SETTINGS_KEY]
    if value not in MODES:
        return SettingsReading("quiet", f"{path}: {SETTINGS_KEY} is {value!r}, not 'quiet' or 'performance'")
    return SettingsReading(value)


class SettingsFile:
    """``settings.json``, re-parsed only when its stat (inode, size, mtime) changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._reading: SettingsReading | None = None

    def read(self) -> SettingsReading:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            stamp = None
        if self._reading is None or stamp != self._stamp:
            self._stamp, self._reading = stamp, parse_settings(self.path)
        return self._reading

    @property
    def stamp(self) -> tuple[int, int, int] | None:
        return self._stamp


def write_mode(path: Path, mode: str) -> None:
    """Set the mode for running and future trainings: atomically, so a reader never sees half a file."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'quiet' or 'performance', not {mode!r}")
    write_json(Path(path), {SETTINGS_KEY: mode})


def valid_batch_size(wanted: int, rollout_size: int) -> int:
    """The largest divisor of ``rollout_size`` not above ``wanted``: RecurrentPPO needs whole minibatches."""
    wanted = max(1, min(wanted, rollout_size))
    return next(size for size in range(wanted, 0, -1) if rollout_size % size == 0)


@dataclass(frozen=True)
class AppliedMode:
    """What one update runs with."""

    mode: Mode
    batch_size: int
    n_epochs: int
    torch_threads: int


_NICE_AT_START: dict[int, int] = {}  # pid -> nice value before any switcher lowered it


class ProcessPriority:
    """Nice value of every thread of this process (Linux keeps one per thread).

    Niceness is relative to the process's value before the first switcher touched it, so
    switchers created one after another (the flow makes one per task) do not compound
    quiet mode's +10 into +19."""

    def __init__(self) -> None:
        self.supported = hasattr(os, "setpriority")
        current = os.getpriority(os.PRIO_PROCESS, 0) if self.supported else 0
        self.base = _NICE_AT_START.setdefault(os.getpid(), current)
        self.current = current
        self._warned = False

    def set(self, niceness: int) -> None:
        target = min(19, self.base + niceness)
        if not self.supported or target == self.current:
            return
        thread_ids = [int(tid) for tid in os.listdir("/proc/self/task")] if sys.platform == "linux" else [0]
        try:
            for thread_id in thread_ids:
                os.setpriority(os.PRIO_PROCESS, thread_id, target)
            self.current = target
        except PermissionError:
            if not self._warned:
                logger.warning("Process priority stays at nice %d: raising it back needs privileges", self.current)
                self._warned = True
        except ProcessLookupError:  # a thread ended while we walked the list
            self.current = target


# per process, so a flow that builds a switcher per task still warns once, not per iteration
_PROBLEMS_WARNED: dict[Path, str | None] = {}


class ModeSwitcher(UpdateHook):
    """The trainer's per-update hook that applies the mode from the settings file.

    The base batch size and epochs are those the trainer set on the model (the phase's);
    a new model object (next iteration, resume, warm start) is a new base.
    """

    sets_runtime = True

    def __init__(self, config: PerformanceModeConfig, run_dir: Path | None = None,
                 settings_file: Path | None = None, workers: int = 1) -> None:
        """The switch of one run.

        :param config: what each mode means (batch and epoch multipliers, threads, priority)
        :param run_dir: where the applied mode is written (``performance_mode.json``); None writes nothing
        :param settings_file: the file read before every update (default: ``config.settings_file``)
        :param workers: trainings sharing this machine at once; "every core" is shared among them
        """
        self.config = config
        self.workers = max(1, workers)
        self.settings = SettingsFile(settings_file or config.settings_file)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.priority = ProcessPriority()
        self.applied: AppliedMode | None = None
        self.forced_quiet = False  # after an out-of-memory error, until the settings file changes
        self._stamp_at_fallback: tuple[int, int, int] | None = None
        self._warned_problem: str | None = None
        self._model: Any = None
        self.modes_used: list[str] = []  # by the current model (iteration), for its record
        self._base: tuple[int, int] = (0, 0)

    # -- what to run with -------------------------------------------------------------------

    def wanted_mode(self) -> Mode:
        reading = self.settings.read()
        if reading.problem and reading.problem != self._warned_problem \
                and reading.problem != _PROBLEMS_WARNED.get(self.settings.path):
            # no file is the default (quiet), said once at INFO; a file that is there but unreadable is a warning
            level = logging.INFO if reading.problem.endswith(" not found") else logging.WARNING
            logger.log(level, "%s: using quiet mode (set it with `rltrader mode quiet|performance`)", reading.problem)
        self._warned_problem = reading.problem
        _PROBLEMS_WARNED[self.settings.path] = reading.problem
        if self.forced_quiet:
            if self.settings.stamp == self._stamp_at_fallback:
                return "quiet"
            self.forced_quiet = False  # the user wrote the file again: their choice wins
        return reading.mode

    def settings_for(self, mode: Mode, model: Any) -> AppliedMode:
        knobs: ModeConfig = getattr(self.config, mode)
        base_batch, base_epochs = self._base
        rollout_size = model.n_steps * model.n_envs
        return AppliedMode(
            mode=mode,
            batch_size=valid_batch_size(int(base_batch * knobs.batch_multiplier), rollout_size),
            n_epochs=max(1, int(base_epochs * knobs.epochs_multiplier + 0.5)),
            torch_threads=knobs.torch_threads or max(1, (os.cpu_count() or 1) // self.workers),
        )

    # -- the hook -----------------------------------------------------------------------------

    def __call__(self, model: Any, timesteps_done: int) -> None:
        if model is not self._model:
            self._model, self._base = model, (model.batch_size, model.n_epochs)
            self.modes_used = []
        mode = self.wanted_mode()
        target = self.settings_for(mode, model)
        if mode not in self.modes_used:
            self.modes_used.append(mode)
        # a new model (next iteration, resume) starts at its base settings even when the mode is unchanged
        if target != self.applied or (model.batch_size, model.n_epochs) != (target.batch_size, target.n_epochs):
            self._apply(model, target)

    def applied_mode(self) -> str | None:
        return self.applied.mode if self.applied is not None else None

    def _apply(self, model: Any, target: AppliedMode) -> None:
        previous = self.applied
        model.batch_size, model.n_epochs = target.batch_size, target.n_epochs
        torch.set_num_threads(target.torch_threads)
        self.priority.set(getattr(self.config, target.mode).niceness)
        if previous is not None and previous.mode != target.mode:
            logger.info("Performance mode: %s -> %s (batch %d -> %d, epochs %d -> %d, threads %d -> %d)",
                        previous.mode, target.mode, previous.batch_size, target.batch_size,
                        previous.n_epochs, target.n_epochs, previous.torch_threads, target.torch_threads)
        elif previous is None:
            logger.info("Performance mode: %s (batch %d, epochs %d, threads %d)", target.mode,
                        target.batch_size, target.n_epochs, target.torch_threads)
        self.applied = target
        if self.run_dir is not None:
            write_json(self.run_dir / STATUS_FILE, {
                **asdict(target), "settings_file": str(self.settings.path), "pid": os.getpid(),
                "applied_at": datetime.now(UTC).isoformat(timespec="seconds")})

    def recover_from_out_of_memory(self) -> bool:
        """After an out-of-memory error: quiet until the settings file is written again.

        Returns whether anything changed, i.e. whether retrying can help.
        """
        if self.applied is None or self.applied.mode != "performance":
            return False
        self.forced_quiet, self._stamp_at_fallback = True, self.settings.stamp
        return True


def read_status(results_dir: Path) -> dict[str, Any] | None:
    """The most recently applied mode of any run under ``results_dir``, with its run directory."""
    candidates = [*Path(results_dir).glob(f"*/{STATUS_FILE}"), *Path(results_dir).glob(f"*/*/{STATUS_FILE}")]
    if not candidates:
        return None
    newest = max(candidates, key=lambda path: path.stat().st_mtime_ns)
    try:
        return {**json.loads(newest.read_text(encoding="utf-8")), "run_dir": str(newest.parent)}
    except (OSError, json.JSONDecodeError):
        return None
