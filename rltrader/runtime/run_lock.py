"""One trainer per run directory.

Two trainers writing one run directory (two terminals, a terminal and a UI run, a UI run
started twice) would interleave checkpoints and run states and keep neither run. The first
one to start holds an operating-system lock on ``<run>/run.lock`` (``filelock``: ``flock``
on POSIX) for as long as it trains; a second one exits at once, naming the holder from
``<run>/run.lock.json``. The kernel drops the lock when its process dies, however it dies,
so a ``kill -9`` leaves no lock to clear by hand: the next trainer takes it over and says so.

The holder file also names what the holder was doing for whoever watches it (an :class:`LockOwner`:
the Prefect layer records its flow run). When the next process takes the lock over, the owner is
told who held it before, so the run the dead process left open can be closed (marked Crashed,
naming the run that resumed its work) instead of showing "Running" for ever. The lock is the proof
that the previous holder is gone: nothing a live process holds is ever handed to :meth:`took_over`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from rltrader.atomic import write_json
from rltrader.errors import UserInputError

logger = logging.getLogger(__name__)

LOCK_FILE = "run.lock"
HOLDER_FILE = "run.lock.json"
TRAIN_REMEDY = "pass another --results_dir (or --seed)"


class RunDirectoryInUse(UserInputError):
    """Another live process trains in this run directory."""


class LockOwner(Protocol):
    """What holds a run directory besides a process: a run someone watches (a Prefect flow run).

    The run lock stays free of Prefect; the layer that knows the run passes an owner."""

    def details(self) -> dict[str, Any]:
        """What the holder file records about the run, next to the process (JSON values)."""

    def took_over(self, previous: dict[str, Any]) -> None:
        """Called once the lock is held, before the work starts, with the dead previous holder's record
        (pid, host, since, command and its owner's details): close what it left open."""


def read_holder(run_dir: str | Path) -> dict[str, Any]:
    """Who holds (or last held) the run directory's lock: pid, host, since, command; {} if unknown."""
    try:
        return json.loads((Path(run_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "a process that has not yet said who it is"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"


def _in_use(run_dir: str | Path, remedy: str, holder: str = "trainer",
            what: str = "run directory") -> RunDirectoryInUse:
    return RunDirectoryInUse(f"{run_dir}: another {holder} is using this {what}: "
                             f"{_describe(read_holder(run_dir))}; wait for it to finish or stop it, or {remedy}")


@contextlib.contextmanager
def run_directory_lock(run_dir: str | Path, remedy: str = TRAIN_REMEDY, holder: str = "trainer",
                       what: str = "run directory", owner: LockOwner | None = None) -> Iterator[None]:
    """Hold ``run_dir`` for the block; :class:`RunDirectoryInUse` (exit 2 at the CLI) if a live process has it.

    :param run_dir: the directory a command writes (a training run, a walk-forward, a study)
    :param remedy: what the refused user can do instead, ending the error line
    :param holder: who holds such a directory, as the error names it (a trainer, a paper account)
    :param what: what the directory is, as the error names it
    :param owner: the run this process works for (None: the process alone); told about a dead
        previous holder once the lock is taken over
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _in_use(run_dir, remedy, holder, what) from None
    try:
        previous = read_holder(run_dir)
        if previous:  # its holder died without releasing (kill -9, power cut): the kernel freed the lock
            logger.info("Took over %s from %s, which is no longer running", run_dir / LOCK_FILE, _describe(previous))
        write_json(run_dir / HOLDER_FILE, {"pid": os.getpid(), "host": socket.gethostname(),
                                           "since": datetime.now(UTC).isoformat(timespec="seconds"),
                                           "command": " ".join(sys.argv),
                                           **(owner.details() if owner is not None else {})})
        if previous and owner is not None:
            owner.took_over(previous)
        yield
    finally:
        (run_dir / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
        if created:
            _remove_if_only_the_lock(run_dir)


def _remove_if_only_the_lock(run_dir: Path) -> None:
    """A directory this lock created and nothing else wrote to goes again (bad input found under the lock
    writes nothing); the lock file of a directory with work in it stays, as filelock leaves it."""
    try:
        if [path.name for path in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            run_dir.rmdir()
    except OSError:  # another process took the directory meanwhile: it is theirs now
        pass


def check_run_directory_free(run_dir: str | Path, remedy: str = TRAIN_REMEDY) -> None:
    """Raise :class:`RunDirectoryInUse` now if a live process holds ``run_dir``; creates nothing.

    The command asks before it starts a Prefect server; the flow still takes the lock itself."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise _in_use(run_dir, remedy) from None
    lock.release()


__all__ = ["HOLDER_FILE", "LOCK_FILE", "LockOwner", "RunDirectoryInUse", "check_run_directory_free", "read_holder",
           "run_directory_lock"]
