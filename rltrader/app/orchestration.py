"""Running a command's work as Prefect flows: the server it reports to, stopping within seconds, what the
terminal shows meanwhile.

Prefect is imported here only inside the functions that need it (seconds of import): ``rltrader --help``,
``rltrader clear-cache`` and a bad file's one-line error never pay for it. The console shows rltrader's
own lines; a library's warnings go to the run's logs in the UI and reach the terminal only at
``--verbose 2`` (:func:`console_log_level`).
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
import typing
from typing import Any

from rltrader.config import Config

T = typing.TypeVar("T")
#: Commands whose work a second run of the same command resumes.
RESUMABLE = {"train", "walkforward", "tune", "paper", "retrain"}
LOGGER_NAME = "rltrader"


def prefect_environment() -> None:
    """Settings that must be in place before Prefect is imported: the ``flows`` package sets them."""
    import flows  # noqa: F401


def quiet_prefect_tracebacks_for_user_errors(verbose: int = 1) -> None:
    """One line for a user error: Prefect's own records of it stay in the UI (and at --verbose 2)."""
    from tasks.console import hide_user_error_records

    hide_user_error_records(verbose)


def start_server(config: Config, verbose: int = 1) -> Any:
    """The Prefect server this command's flows report to (``flows.server.command_server``); its line first."""
    from flows.server import command_server

    server = command_server(config.orchestration.server_host, config.orchestration.server_port)
    if verbose:
        print(server.describe(), file=sys.stderr, flush=True)
    return server


def run_flow(server: Any, work: typing.Callable[[], T]) -> T:
    """Run ``work`` (a flow call) once the server answers, so that Ctrl-C and SIGTERM stop it within seconds
    (``rltrader.runtime.interrupts``); the server this command started is stopped after it."""
    from rltrader.runtime.interrupts import run_stoppable

    def when_ready() -> T:
        server.wait_until_ready()
        return work()

    return run_stoppable(when_ready, cleanup=server.stop, on_stop=print_stopped,
                         keep=lambda: [server.process.pid] if server.process else [])


def print_stopped(signum: int) -> None:
    """The command's last line after a signal: what stopped it, and how to go on."""
    name = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, signal.Signals(signum).name)
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in RESUMABLE:
        print(f"rltrader: stopped by {name}; the work up to the last checkpoint is kept. To resume, run the same "
              f"command: {shlex.join(['rltrader', *sys.argv[1:]])}", file=sys.stderr, flush=True)
    else:
        print(f"rltrader: stopped by {name}", file=sys.stderr, flush=True)


#: Loggers whose records are rltrader's own words: its logger, and the run loggers its flows and tasks write to.
OWN_LOGGERS = (LOGGER_NAME, "prefect.flow_runs", "prefect.task_runs")


class _OwnWarningsOnly(logging.Filter):
    """At the default verbosity, the console's warnings are rltrader's: a library's (Prefect's notes on task
    options, say) stay in the run's logs. Errors and the flows' own lines pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        return any(record.name == name or record.name.startswith(name + ".") for name in OWN_LOGGERS)


def console_log_level(verbose: int) -> None:
    """Terminal logging by --verbose (2: every line; else rltrader's warnings and every error); the Prefect UI
    still gets every log line."""
    from tasks.console import console_handlers

    for handler in console_handlers():
        handler.setLevel(logging.INFO if verbose >= 2 else logging.WARNING)
        if verbose < 2 and not any(isinstance(f, _OwnWarningsOnly) for f in handler.filters):
            handler.addFilter(_OwnWarningsOnly())


def show_flow_progress(prefixes: tuple[str, ...]) -> None:
    """The flow's progress lines (those starting with ``prefixes``) on the terminal at the default verbosity."""
    from tasks.console import console_handlers

    class _ProgressLines(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or record.getMessage().startswith(prefixes)

    for handler in console_handlers():
        handler.setLevel(logging.INFO)
        handler.addFilter(_ProgressLines())


def run_with_progress_lines(config: Config, verbose: bool, prefixes: tuple[str, ...],
                            flow_call: typing.Callable[[int], T]) -> T:
    """``walkforward``, ``tune`` and ``retrain``: their server, one console line per finished run (every line
    with ``--verbose``), then the flow, stoppable; ``flow_call`` gets the workers' console level."""
    server = start_server(config)
    try:
        prefect_environment()
        import prefect.main  # noqa: F401 - Prefect sets its logging (the console handlers) up here

        quiet_prefect_tracebacks_for_user_errors(2 if verbose else 1)
        console_log_level(2 if verbose else 1)
        show_flow_progress(prefixes)
        level = logging.INFO if verbose else logging.WARNING
        return run_flow(server, lambda: flow_call(level))
    finally:
        server.stop()


__all__ = ["LOGGER_NAME", "OWN_LOGGERS", "RESUMABLE", "console_log_level", "prefect_environment", "print_stopped",
           "quiet_prefect_tracebacks_for_user_errors", "run_flow", "run_with_progress_lines", "show_flow_progress",
           "start_server"]
