"""``rltrader retrain`` and ``rltrader models``: keep a model current, and look after its versions.

- ``retrain NAME --data_path F``: the ``retrain`` flow (plan, train a challenger, compare it with the
  champion on a held-out window, promote only on evidence), then the decision and the registry's table;
- ``models list``: every model with its champion;
- ``models show NAME``: every version (lineage, windows, held-out figures, decision) and the events;
- ``models promote NAME VERSION``: make a version the champion by hand (recorded with ``--reason``);
- ``models rollback NAME``: the champion before the current one serves again.

Paper trading that follows a model (``rltrader paper --model NAME``) switches to the new champion at
its next bar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from rltrader.app.arguments import add_request_flags, after_loading, request_from_args, require_bar_file
from rltrader.app.orchestration import run_with_progress_lines
from rltrader.errors import UserInputError
from rltrader.jobs.requests import RetrainRequest

REGISTRY_HELP = "where model registries live (default: results/registry)"


def _console() -> Console:
    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)


def retrain_command(args: argparse.Namespace) -> int:
    """Plan, train a challenger, compare it with the champion on held-out bars; print the decision and the table."""
    from rltrader.display.registry import versions_table
    from rltrader.registry.store import check_model_name, open_registry
    from rltrader.retraining.retrain import check_retrain_input

    request = request_from_args(args, tuple(RetrainRequest.model_fields), RetrainRequest)
    check_model_name(request.name)
    config = request.to_config()  # a bad config fails here, before Prefect starts
    require_bar_file(request.data_path, config)
    check_retrain_input(request.to_spec())  # a changed bar history: one line naming the bar, before Prefect starts

    def run(level: int) -> dict[str, Any]:
        from flows.retrain import retrain_model  # Prefect import: seconds, so only here

        return retrain_model(request)

    result = run_with_progress_lines(config, args.verbose, ("Retrain ", "Iteration "), run)
    console = _console()
    console.print(versions_table(open_registry(request.registry_root, request.name), 10))
    console.print(f"rltrader retrain {request.name}: {result['kind']}: {result['reason']}")
    return 0


def models_command(args: argparse.Namespace) -> int:
    """List the models, show one's versions and events, promote a version or roll back the champion."""
    from rltrader.display.registry import event_line, registries_table, versions_table
    from rltrader.display.trust import trust_lines
    from rltrader.registry.store import open_registry, registry_names

    console = _console()
    if args.action == "list":
        names = registry_names(args.registry_dir)
        if not names:
            console.print(f"No models in {args.registry_dir}; `rltrader retrain NAME --data_path FILE` creates one.")
            return 0
        console.print(registries_table([open_registry(args.registry_dir, name) for name in names]))
        return 0
    if not args.name:
        raise UserInputError(f"rltrader models {args.action} needs a model name, e.g. rltrader models {args.action} "
                             "xauusd-h1")
    registry = open_registry(args.registry_dir, args.name)
    if args.action == "show":
        console.print(versions_table(registry, args.versions or None))
        for event in registry.file.events[-args.events:]:
            console.print("  " + event_line(event))
        shown = args.version or registry.file.champion
        if shown is not None:
            console.print(f"Trust in v{shown}{' (the champion)' if shown == registry.file.champion else ''}, "
                          "kept in its bundle:")
            for line in trust_lines(registry.bundle(shown).description.trust):
                console.print("  " + line)
        return 0
    with registry.writing():
        if args.action == "promote":
            if args.version is None:
                raise UserInputError("rltrader models promote needs the version, e.g. rltrader models promote "
                                     f"{args.name} 3")
            event = registry.promote(args.version, args.reason)
        else:
            event = registry.rollback(args.reason)
    console.print(event_line(event))
    console.print(f"Paper accounts following {args.name} switch to v{event.champion_after} at their next bar.")
    return 0


def add_registry_commands(commands: Any) -> None:
    """The ``retrain`` and ``models`` subcommands, on ``rltrader``'s subparsers."""
    retrain = commands.add_parser(
        "retrain", help="train a challenger on the latest bars; promote it over the champion only on evidence",
        description="Place walk-forward's last fold at the file's end (train, validation, and a recent held-out window "
                    "neither model trained or selected on; retrain: in the config), train a challenger (cold, warm "
                    "or warm_reset; resumable), score it and the champion on the held-out window with the same costs, "
                    "and test their per-bar return differences (one-sided, Newey-West). The challenger becomes "
                    "champion only with P(better) >= retrain.promote_probability and a drawdown within "
                    "retrain.drawdown_tolerance; otherwise the champion stays and the registry records why. A file "
                    "whose earlier bars changed is refused; one with no new bars is skipped.")
    retrain.add_argument("name", help="the model's name, e.g. xauusd-h1 (its registry: REGISTRY_DIR/NAME)")
    names = [name for name in RetrainRequest.model_fields if name not in ("name", "dask_address")]
    add_request_flags(retrain, after_loading(names), required=("data_path",), model=RetrainRequest)
    retrain.add_argument("--verbose", action="store_true", help="every log line, not only the progress lines")
    retrain.set_defaults(handler=retrain_command)

    models = commands.add_parser(
        "models", help="the model registry: list models, show versions, promote or roll back a champion",
        description="list: every model and its champion. show NAME: every version (lineage, windows, held-out "
                    "figures, the decision), the latest events and a version's trust report (intervals, selection, "
                    "cost stress, live-stream parity, a study's PBO, a CPCV). promote NAME VERSION: make VERSION the "
                    "champion. rollback NAME: the champion before the current one serves again. Paper accounts "
                    "following NAME switch at their next bar.")
    models.add_argument("action", choices=("list", "show", "promote", "rollback"))
    models.add_argument("name", nargs="?", default=None, help="the model's name (all but list)")
    models.add_argument("version", nargs="?", type=int, default=None,
                        help="promote: the version to make champion; show: whose trust report to show (default: the "
                             "champion's)")
    models.add_argument("--reason", default="", help="promote and rollback: why, kept in the registry")
    models.add_argument("--registry_dir", type=Path, default=Path("results/registry"), help=REGISTRY_HELP)
    models.add_argument("--events", type=int, default=10, help="show: how many recent events (default 10)")
    models.add_argument("--versions", type=int, default=20,
                        help="show: how many of the newest versions (default 20; 0 shows all)")
    models.set_defaults(handler=models_command)


__all__ = ["add_registry_commands", "models_command", "retrain_command"]
