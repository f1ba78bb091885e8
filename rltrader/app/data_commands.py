"""``rltrader preprocess``, ``synth`` and ``clear-cache``: bar files in, features, known-answer markets and the cache.

Each handler parses its flags, calls the domain and prints what :mod:`rltrader.display` formats. Modules that
load numba kernels, torch or Prefect are imported in the handler that needs them, so ``rltrader --help``
stays under a second.
"""

from __future__ import annotations

import argparse
import json
import time
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltrader.app.arguments import (
    add_config_options,
    add_data_options,
    add_request_flags,
    require_bar_file,
    resolve_config,
    scalar_type,
)
from rltrader.app.orchestration import (
    prefect_environment,
    quiet_prefect_tracebacks_for_user_errors,
    run_flow,
    start_server,
)
from rltrader.data.known_answer import MARKET_KINDS, KnownAnswerMarket, sidecar_path
from rltrader.display.service import cleared_lines, synth_lines
from rltrader.errors import UserInputError


def preprocess_command(args: argparse.Namespace) -> int:
    """Validate the file, build (or reuse) its cached features through the Prefect flow, print the data report."""
    from rltrader.display.data_report import data_report_text
    from rltrader.features.preparation import PreparedData, check_bars

    config = resolve_config(args)
    require_bar_file(str(args.data_path), config)
    check_bars(args.data_path, config)  # a bad file is one line in a second, before any server starts
    server = start_server(config)
    try:
        prefect_environment()
        from flows.preprocess import preprocess_flow  # Prefect import: seconds, so only once the file is good

        quiet_prefect_tracebacks_for_user_errors()
        started = time.perf_counter()
        result = run_flow(server, lambda: preprocess_flow(str(args.data_path), config.model_dump(mode="json"),
                                                          config.optimizations.cache_environments))
    finally:
        server.stop()
    prepared = PreparedData.from_dict(result)
    if args.json:
        print(json.dumps(prepared.to_dict(), indent=2))
        return 0
    print(f"\nrltrader preprocess: {args.data_path}")
    print(data_report_text(prepared, config))
    print(f"  {'done':<13}  in {time.perf_counter() - started:.1f}s through {server.name}\n")
    return 0


def synth_command(args: argparse.Namespace) -> int:
    """Write a known-answer market and its generator (the oracle) beside it."""
    from rltrader.data.synthetic import break_times, write_market

    settings = {name: getattr(args, name) for name in KnownAnswerMarket.model_fields
                if name not in ("sha256",) and getattr(args, name, None) is not None}
    try:
        market = KnownAnswerMarket(**settings)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserInputError(f"--{first['loc'][0]}: {first['msg'].removeprefix('Value error, ')}") from None
    out = args.out or Path("data") / "synthetic" / f"{market.kind}_seed{market.seed}.csv"
    if out.suffix.lower() != ".csv":
        raise UserInputError(f"--out {out}: known-answer markets are written as MT5 CSV; give a .csv path")
    written = write_market(market, out)
    print("\n".join(synth_lines(written, out, sidecar_path(out), break_times(written))))
    return 0


def clear_cache_command(args: argparse.Namespace) -> int:
    from rltrader.features.cache import FeatureStore

    store = FeatureStore(resolve_config(args).cache.dir)
    paths, freed = store.clear(dry_run=args.dry_run)
    print("\n".join(cleared_lines(paths, freed, args.dry_run, store.root)))
    return 0


def add_data_commands(commands: Any) -> None:
    """``preprocess``, ``synth`` and ``clear-cache`` on ``rltrader``'s subparsers."""
    pre = commands.add_parser(
        "preprocess",
        help="validate a bar file, build cached features and print a data report",
        description="Validate a bar file, compute causal features, split and normalize them, "
        "cache the result as parquet and print a data report.",
    )
    add_data_options(pre)
    add_request_flags(pre, ("cache_environments",))
    pre.add_argument("--json", action="store_true", help="print the result as JSON instead of the report")
    add_config_options(pre)
    pre.set_defaults(handler=preprocess_command)

    synth = commands.add_parser(
        "synth", help="write a known-answer market: bars with a planted edge whose oracle is known",
        description="Write bars (MT5 CSV) with a planted, learnable edge: AR(1) momentum, a time-of-day drift, "
        "mean reversion, a volume-led continuation, a drift in calm volatility spells, a day-of-week drift, a "
        "session-dependent trend (two features at once), or time-of-day blocks that swap signs partway "
        "(regime_change; --breaks 0.4 0.7 flips a momentum, time-of-day or volume edge at each share of the bars), "
        "with a per-bar spread and a seed; the generator goes beside the file "
        "(<file>.oracle.json), so every report on it scores the oracle and the edge the agent captured.")
    synth.add_argument("kind", choices=MARKET_KINDS, help="which edge to plant")
    synth.add_argument("--out", type=Path, default=None,
                       help="CSV to write (default: data/synthetic/<kind>_seed<seed>.csv)")
    for name, field in KnownAnswerMarket.model_fields.items():
        if name in ("kind", "sha256"):
            continue
        if typing.get_origin(field.annotation) is list:  # breaks: one value or several
            synth.add_argument(f"--{name}", type=typing.get_args(field.annotation)[0], nargs="+", default=None,
                               help=f"{field.description or name} (default: none)".replace("%", "%%"))
            continue
        synth.add_argument(f"--{name}", type=scalar_type(field.annotation), default=None,
                           help=f"{field.description or name} (default: {field.default})".replace("%", "%%"))
    synth.set_defaults(handler=synth_command)

    clear = commands.add_parser("clear-cache", help="remove cached features and Prefect cache records")
    clear.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                       help="only list what would be removed")
    add_config_options(clear)
    clear.set_defaults(handler=clear_cache_command)


__all__ = ["add_data_commands", "clear_cache_command", "preprocess_command", "synth_command"]
