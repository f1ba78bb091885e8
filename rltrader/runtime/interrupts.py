"""Stopping a command on Ctrl-C or SIGTERM within seconds, whatever it was doing.

A command's work (a Prefect flow: training, walk-forward, tuning) runs in a worker thread while
the main thread keeps the signals. Run in the main thread, Prefect's flow engine installs its own
SIGTERM handler for the run, and after a signal it reports the run's end to its server, retrying
for minutes when that server is gone: ``rltrader train`` once slept over 90 s after ``kill -TERM``.
Here the first SIGINT or SIGTERM:

1. raises :class:`KeyboardInterrupt` inside the work (Python's own mechanism for asynchronous
   exceptions), so training stops at its next Python line, the flow records how it ended, and the
   checkpoints already written stay (they are written atomically; nothing is half-written);
2. terminates the processes the work started (worker pools), but not those that were running before
   it began or that the command stops itself afterwards (its Prefect server, which must outlive the
   flow's last report);
3. gives the work ``grace_s`` to unwind; past that, or on a second signal, the command's
   cleanup runs and the process exits at once, without the interpreter's exit handlers (Prefect's
   flush of its events to a server that may be gone).

The exit status is the shell's convention, 128 + the signal: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

GRACE_S = 5.0
"""Seconds the work gets to unwind after a signal before the process exits regardless (the target is 10)."""


class Stopped(KeyboardInterrupt):
    """The command was stopped by a signal; ``exit_code`` is 128 + its number (a KeyboardInterrupt, so that
    code which lets Ctrl-C through lets a SIGTERM through too).

    :param signum: the signal that stopped it
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Stopped` in the main thread, as Ctrl-C raises KeyboardInterrupt,
    so a command stopped before its work starts still runs its ``finally`` blocks (its server is stopped)."""
    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_in_thread(thread: threading.Thread, exception: type[BaseException]) -> None:
    """Raise ``exception`` in ``thread`` at its next Python instruction (``PyThreadState_SetAsyncExc``)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exception))


def _is_resource_tracker(process: Any) -> bool:
    """multiprocessing's resource tracker ignores SIGINT and SIGTERM by design and exits once the processes
    that share its pipe are gone; killed, it is relaunched at exit and prints tracebacks about the
    semaphores it no longer knows."""
    import psutil

    try:
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _children(exclude: Iterable[int]) -> list[Any]:
    """The processes this one started, and theirs, except the trees rooted at ``exclude`` and the resource tracker."""
    import psutil

    excluded = set(exclude)
    found = []
    for child in psutil.Process().children(recursive=False):
        if child.pid in excluded or _is_resource_tracker(child):
            continue
        try:
            found.extend([child, *child.children(recursive=True)])
        except psutil.NoSuchProcess:
            continue
    return found


def terminate_children(exclude: Iterable[int] = (), grace_s: float = 3.0) -> None:
    """SIGTERM the processes this one started (but the trees at ``exclude``), SIGKILL what is left after ``grace_s``."""
    import psutil

    processes = _children(exclude)
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=1.0)


def run_stoppable(work: Callable[[], T], cleanup: Callable[[], None], on_stop: Callable[[int], None],
                  keep: Callable[[], Iterable[int]] = tuple, grace_s: float = GRACE_S) -> T:
    """Run ``work`` to its end, or until a SIGINT/SIGTERM stops it (see the module docstring).

    :param work: what the command does; its result is returned, its exception re-raised
    :param cleanup: stops what the command started (its server); runs once the work has ended, however it
        ended, and on a hard exit
    :param on_stop: prints how to resume; called with the signal number before the process ends
    :param keep: pids whose process trees the signal must not terminate (they are stopped by ``cleanup``)
    :param grace_s: seconds the work gets to unwind before the process exits regardless
    :raises Stopped: when a signal stopped the work and it unwound within ``grace_s``
    """
    if threading.current_thread() is not threading.main_thread():  # signals belong to the main thread
        try:
            return work()
        finally:
            cleanup()
    import psutil

    outcome: dict[str, Any] = {}
    stop = {"signum": 0, "at": 0.0}
    earlier = {child.pid for child in psutil.Process().children()}  # not the work's: left alone

    def spared() -> list[int]:
        return [*earlier, *keep()]


    def body() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = error

    thread = threading.Thread(target=body, name="rltrader-command")

    def hard_exit(signum: int) -> None:
        try:
            terminate_children(spared(), grace_s=1.0)
            cleanup()
        finally:
            on_stop(signum)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + signum)

    sweeper: list[threading.Thread] = []

    def handler(signum: int, frame: Any) -> None:
        if stop["signum"]:  # a second signal: no more waiting
            hard_exit(stop["signum"])
        stop["signum"], stop["at"] = signum, time.monotonic()
        _raise_in_thread(thread, KeyboardInterrupt)
        sweeper.append(threading.Thread(target=terminate_children, args=(spared(), 2.0), daemon=True))
        sweeper[0].start()

    # a SIGINT ignored from the start stays ignored: a shell starts background jobs so, and Ctrl-C in
    # the terminal is then not meant for them (Python itself keeps it ignored too)
    handled = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in handled}
    try:
        thread.start()
        while thread.is_alive():
            thread.join(timeout=0.1)
            if stop["signum"] and time.monotonic() - stop["at"] > grace_s:
                hard_exit(stop["signum"])
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stop["signum"]:
        for each in sweeper:
            each.join(timeout=max(0.0, grace_s - (time.monotonic() - stop["at"])))
        # again: a pool may have been starting a worker when the signal came
        terminate_children(spared(), grace_s=1.0)
    cleanup()
    if stop["signum"]:
        raise Stopped(stop["signum"])
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
