"""The ``rltrader`` command.

Every subcommand turns a user mistake into one line on stderr and exit status 2; only a
bug shows a traceback. Prefect is imported only by the subcommands that orchestrate, so
``rltrader clear-cache`` and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rltrader import __version__
from rltrader.config import Config, load_config
from rltrader.errors import UserInputError

LOGGER_NAME = "rltrader"


def _prefect_environment() -> None:
    """Settings that must be in place before Prefect is imported."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    extra = os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "")
    if LOGGER_NAME not in extra.split(","):
        os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(filter(None, [extra, LOGGER_NAME]))


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a failed task with its traceback; for a user error the message is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserInputError):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_prefect_tracebacks_for_user_errors() -> None:
    log_filter = _HideUserErrorTracebacks()
    for logger in [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(("prefect", LOGGER_NAME))
    ]:
        for handler in logger.handlers:
            handler.addFilter(log_filter)


def _resolve_config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return config.with_overrides(
        {
            "data.sep": getattr(args, "sep", None),
            "data.date_format": getattr(args, "date_format", None),
            "data.dayfirst": getattr(args, "dayfirst", None),
            "data.point": getattr(args, "point", None),
            "cache.dir": str(args.cache_dir) if getattr(args, "cache_dir", None) else None,
        }
    )


def _command_preprocess(args: argparse.Namespace) -> int:
    config = _resolve_config(args)
    use_cache = config.cache.enabled and not args.no_cache_environments
    _prefect_environment()
    from flows.preprocess import preprocess_flow  # Prefect import: seconds, so only here
    from rltrader.preprocessing import PreparedData
    from rltrader.report import data_report_text

    _quiet_prefect_tracebacks_for_user_errors()
    started = time.perf_counter()
    result = preprocess_flow(str(args.data_path), config.model_dump(mode="json"), use_cache)
    prepared = PreparedData.from_dict(result)
    if args.json:
        print(json.dumps(prepared.to_dict(), indent=2))
    else:
        print(f"\nrltrader preprocess: {args.data_path}")
        print(data_report_text(prepared))
        server = os.environ.get("PREFECT_API_URL") or "a temporary Prefect server (set PREFECT_API_URL to use yours)"
        print(f"  {'done':<13}  in {time.perf_counter() - started:.1f}s through {server}\n")
    return 0


def _human_bytes(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def _command_clear_cache(args: argparse.Namespace) -> int:
    from rltrader.cache import FeatureStore

    config = _resolve_config(args)
    store = FeatureStore(config.cache.dir)
    paths, freed = store.clear(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in paths:
        print(f"  {verb} {path}")
    print(f"{verb} {len(paths)} item(s), {_human_bytes(freed)} from {store.root}")
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    from rltrader.env import MarketData
    from rltrader.evaluation.loading import load_model
    from rltrader.evaluation.report import evaluate_model, report_text, write_report
    from rltrader.preprocessing import preprocess

    config = _resolve_config(args)
    model = load_model(args.model)
    market = MarketData.from_prepared(preprocess(args.data_path, config), config)
    report = evaluate_model(model, market, args.split, config.env, seed=args.seed, evaluator=args.evaluator)
    out_dir = args.out or Path("results") / "evaluations" / f"{Path(args.model).stem}-{args.split}"
    paths = write_report(report, out_dir)
    print(report_text(report))
    print(f"\n  wrote {paths['metrics']}, {paths['equity'].name}, {paths['plot'].name}")
    return 0


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """The bar file and how to read it: every command that reads bars takes the same overrides."""
    parser.add_argument("--data_path", type=Path, required=True, help="bar file: CSV/TSV export or parquet")
    parser.add_argument("--date_format", default=None,
                        help="strftime format of the timestamps, e.g. '%%d.%%m.%%Y %%H:%%M'")
    parser.add_argument(
        "--dayfirst", action=argparse.BooleanOptionalAction, default=None,
        help="force day-first (--dayfirst) or month-first (--no-dayfirst) dates; default: detect",
    )
    parser.add_argument("--sep", default=None, help="column separator: ',', ';' or 'tab'; default: detect")
    parser.add_argument("--point", type=float, default=None,
                        help="price of one spread point; default: from price digits")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--cache_dir", type=Path, default=None, help="cache directory (default: cache.dir, ./cache)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltrader",
        description="Train recurrent PPO trading agents on bar data (MT5 exports, CSV, parquet).",
    )
    parser.add_argument("--version", action="version", version=f"rltrader {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    pre = commands.add_parser(
        "preprocess",
        help="validate a bar file, build cached features and print a data report",
        description="Validate a bar file, compute causal features, split and normalize them, "
        "cache the result as parquet and print a data report.",
    )
    _add_data_options(pre)
    pre.add_argument(
        "--no-cache_environments", dest="no_cache_environments", action="store_true",
        help="recompute features even if a cached result exists",
    )
    pre.add_argument("--json", action="store_true", help="print the result as JSON instead of the report")
    _add_config_options(pre)
    pre.set_defaults(handler=_command_preprocess)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved RecurrentPPO model on one split against buy-and-hold, flat and random",
        description="Run a saved model deterministically over a whole split, score it and the baselines "
        "on the same bars and costs, and write metrics.json, equity.parquet and equity.png.",
    )
    evaluate.add_argument("--model", type=Path, required=True, help="RecurrentPPO .zip saved by stable-baselines3")
    _add_data_options(evaluate)
    evaluate.add_argument("--split", choices=("validation", "test", "train"), default="validation",
                          help="split to evaluate (default: validation; keep test for the final report)")
    evaluate.add_argument("--evaluator", choices=("fast", "reference"), default="fast",
                          help="fast (numpy, default) or reference (model.predict per bar); same results")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default: 0)")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output directory (default: results/evaluations/<model>-<split>)")
    _add_config_options(evaluate)
    evaluate.set_defaults(handler=_command_evaluate)

    clear = commands.add_parser("clear-cache", help="remove cached features and Prefect cache records")
    clear.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="only list what would be removed")
    _add_config_options(clear)
    clear.set_defaults(handler=_command_clear_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserInputError as error:
        print(f"rltrader: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("rltrader: interrupted", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())
