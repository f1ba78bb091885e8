"""The ``rltrader`` command: the parser, built from the command groups, and the dispatch.

The commands live in one module per group (:mod:`.data_commands`, :mod:`.train_commands`,
:mod:`.study_commands`, :mod:`.live_commands`, :mod:`.export_commands`, :mod:`.service_commands`,
:mod:`.registry_commands`); each handler parses its flags, calls the domain and prints what
:mod:`rltrader.display` formats. Every subcommand turns a user mistake into one line on stderr and exit
status 2; only a bug shows a traceback. Prefect and torch are imported only by the handlers that need them,
so ``rltrader clear-cache`` and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from rltrader import __version__
from rltrader.app.data_commands import add_data_commands
from rltrader.app.export_commands import add_export_commands
from rltrader.app.live_commands import add_live_commands
from rltrader.app.orchestration import print_stopped
from rltrader.app.registry_commands import add_registry_commands
from rltrader.app.service_commands import add_service_commands
from rltrader.app.study_commands import add_study_commands
from rltrader.app.train_commands import add_train_commands
from rltrader.errors import UserInputError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (what is wrong and where to look), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """``rltrader`` and every subcommand, in the order ``--help`` lists them."""
    parser = _Parser(prog="rltrader", description="Train PPO trading agents (sb3-contrib RecurrentPPO by default, "
                                                  "SB3 PPO with --profile feedforward) on bar data (MT5 exports, "
                                                  "CSV, parquet), fast and honestly.")
    parser.add_argument("--version", action="version", version=f"rltrader {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_data_commands, add_train_commands, add_study_commands, add_service_commands, add_export_commands,
                add_live_commands, add_registry_commands):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (2 for a user's mistake, 128 + the signal when stopped)."""
    from rltrader.runtime.interrupts import stop_on_sigterm

    args = build_parser().parse_args(argv)
    try:
        with stop_on_sigterm():
            return args.handler(args)
    except UserInputError as error:
        print(f"rltrader: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as stop:  # Ctrl-C, or a SIGTERM (rltrader.runtime.interrupts.Stopped)
        signum = getattr(stop, "signum", signal.SIGINT)
        print_stopped(signum)
        return 128 + signum


def entry_point() -> None:
    sys.exit(main())


__all__ = ["build_parser", "entry_point", "main"]
