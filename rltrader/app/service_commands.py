"""``rltrader serve`` and ``rltrader mode``: the Prefect deployments, and quiet or performance mode while training runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rltrader.app.arguments import add_config_options, add_request_flags, resolve_config, settings_file
from rltrader.app.orchestration import prefect_environment
from rltrader.display.service import mode_set_line, mode_status_lines
from rltrader.errors import UserInputError


def mode_command(args: argparse.Namespace) -> int:
    """Write the mode the running trainings apply before their next update, or show it (``status``)."""
    from rltrader.runtime.performance_mode import parse_settings, read_status, write_mode  # torch: only here

    path = settings_file(args, resolve_config(args))
    if args.mode != "status":
        try:
            write_mode(path, args.mode)
        except OSError as error:
            raise UserInputError(f"{path}: cannot write ({error.strerror}); check --settings_file") from None
        print(mode_set_line(args.mode, path))
        return 0
    status = read_status(args.results_dir)
    alive = None if status is None else process_alive(int(status["pid"]))
    print("\n".join(mode_status_lines(parse_settings(path), path, status, args.results_dir, alive)))
    return 0


def process_alive(pid: int) -> bool | None:
    """Whether ``pid`` runs; None where that cannot be asked safely (on Windows, os.kill terminates)."""
    if sys.platform == "win32":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def serve_command(args: argparse.Namespace) -> int:
    """Serve the deployments (training, performance mode, paper trading, the nightly retrain) until Ctrl-C."""
    prefect_environment()
    from deployments.serve import PaperDefaults, serve_deployments  # Prefect import: seconds, so only here

    config = resolve_config(args)
    paper = PaperDefaults(bundle=args.paper_bundle or args.results_dir / str(config.training.seed) / "bundle",
                          data_path=args.paper_data_path or args.data_path, name=args.paper_name,
                          start=args.paper_start, every_minutes=args.paper_every, model=args.paper_model,
                          stand_aside=args.paper_stand_aside)
    return serve_deployments(config, args.config, args.data_path, args.results_dir, settings_file(args, config),
                             args.host, args.port, args.cache_dir, paper, args.retrain_name)


def add_service_commands(commands: Any) -> None:
    """``mode`` and ``serve`` on ``rltrader``'s subparsers."""
    mode = commands.add_parser(
        "mode", help="switch running and future training between quiet and performance, or show the mode",
        description="quiet: configured batch and epochs, fewer threads, lower priority (the machine stays "
        "usable); performance: batch x2, epochs x1.5, every core. Training applies it before its next update.")
    mode.add_argument("mode", choices=["quiet", "performance", "status"])
    mode.add_argument("--settings_file", type=Path, default=None, help="default: settings.json")
    mode.add_argument("--results_dir", type=Path, default=Path("results"),
                      help="where status looks for the mode trainings applied (default: results)")
    add_request_flags(mode, ("config",))
    mode.set_defaults(handler=mode_command)

    serve = commands.add_parser(
        "serve", help="start a local Prefect server if none runs, serve the deployments, print the UI address",
        description="Serve the train-ppo deployment (run it from the Prefect UI) and the performance-mode "
        "deployment (performance in the evening, quiet in the morning; times in the config's "
        "orchestration.mode_schedule). Uses PREFECT_API_URL when set; otherwise starts a server on "
        "127.0.0.1 unless one answers there. Ctrl-C stops serving (and the server it started).")
    serve.add_argument("--host", default=None, help="server host (default: orchestration.server_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="server port (default: orchestration.server_port, 4200)")
    serve.add_argument("--data_path", type=Path, default=Path("data/XAUUSDm_15min.csv"),
                       help="default bar file of train-ppo runs (default: the shipped sample)")
    serve.add_argument("--results_dir", type=Path, default=Path("results"), help="default results directory")
    serve.add_argument("--settings_file", type=Path, default=None,
                       help="performance mode file (default: settings.json)")
    serve.add_argument("--paper_bundle", type=Path, default=None,
                       help="bundle of paper-trade runs (default: RESULTS_DIR/<seed>/bundle)")
    serve.add_argument("--paper_data_path", type=Path, default=None,
                       help="bar file paper-trade follows (default: --data_path)")
    serve.add_argument("--paper_name", default="demo", help="paper account of paper-trade runs (default: demo)")
    serve.add_argument("--paper_start", default=None,
                       help="a new paper account's first decision bar (default: the newest bar when it opens)")
    serve.add_argument("--paper_every", type=float, default=15.0,
                       help="minutes between scheduled paper-trade runs (default: 15)")
    serve.add_argument("--paper_model", default=None,
                       help="paper-trade follows this registry model's champion instead of --paper_bundle")
    serve.add_argument("--paper_stand_aside", action=argparse.BooleanOptionalAction, default=None,
                       help="with --paper_model: the account goes flat after a break alarm until a retrain has the "
                            "evidence (rltrader paper --stand_aside; default: the account's setting)")
    serve.add_argument("--retrain_name", default=None,
                       help="the model the nightly retrain deployment keeps current (default: the bar file's stem)")
    add_config_options(serve)
    serve.set_defaults(handler=serve_command)


__all__ = ["add_service_commands", "mode_command", "process_alive", "serve_command"]
