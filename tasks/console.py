"""What Prefect prints on the terminal: everything, except its own account of a user's mistake.

A flow or task that fails on user input (bad bars, a run directory in use, a plan mismatch, a missing
spread) raises a :class:`~rltrader.errors.UserInputError`, and the command prints it as one line,
``rltrader: error: ...``. Prefect logs the same failure three more times at ERROR ("Encountered
exception during execution: DataError(...)" with a traceback, "Task run failed with exception ...",
"Finished in state Failed(...)"); those records stay in the Prefect UI (its API log handler is not
filtered) and at ``--verbose 2``, and are kept off the console here. The temporary-server notice
Prefect prints when it starts one of its own goes too, and so do its three lines about a run
"aborted by an interrupt signal" after Ctrl-C or SIGTERM: the command's last line says that, with how
to resume.
"""

from __future__ import annotations

import logging

from rltrader.errors import UserInputError

_NOTICES = ("Starting temporary server on", "Stopping temporary server on")
_INTERRUPTED = "aborted by an interrupt signal"  # Ctrl-C or SIGTERM: the command's last line says so, once


def _user_error_names() -> set[str]:
    names, pending = set(), [UserInputError]
    while pending:
        kind = pending.pop()
        names.add(kind.__name__)
        pending.extend(kind.__subclasses__())
    return names


class HidePrefectAccountsOfUserErrors(logging.Filter):
    """Drops Prefect's records about a run that failed on a :class:`UserInputError`, and its server notices."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserInputError):
            return False
        if not record.name.startswith("prefect"):
            return True
        message = record.getMessage()
        if message.startswith(_NOTICES) or _INTERRUPTED in message:
            return False
        if record.levelno < logging.ERROR and "Finished in state" not in message:
            return True
        return not any(f"{name}(" in message or f"{name}: " in message for name in _user_error_names())


def console_handlers() -> list[logging.Handler]:
    """Prefect's console handlers, wherever its logging config attached them."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    return [handler for logger in loggers for handler in getattr(logger, "handlers", [])
            if isinstance(handler, PrefectConsoleHandler)]


def hide_user_error_records(verbose: int = 1) -> None:
    """Keep Prefect's accounts of user errors off this process's console (below ``--verbose 2``)."""
    if verbose >= 2:
        return
    for handler in console_handlers():
        if not any(isinstance(each, HidePrefectAccountsOfUserErrors) for each in handler.filters):
            handler.addFilter(HidePrefectAccountsOfUserErrors())
