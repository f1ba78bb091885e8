"""The ``rltrader`` command.

Every subcommand turns a user mistake into one line on stderr and exit status 2; only a
bug shows a traceback. Prefect is imported only by the subcommands that orchestrate, so
``rltrader clear-cache`` and ``--help`` stay instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import BaseModel, ValidationError

from rltrader import __version__
from rltrader.app.requests import ACCOUNT_FIELDS, FLOW_ONLY, LOADING_FIELDS, SWITCHES, TrainRequest
from rltrader.config import Config
from rltrader.data.known_answer import MARKET_KINDS, KnownAnswerMarket
from rltrader.errors import UserInputError

if TYPE_CHECKING:  # the commands import them when they run: optuna alone takes a second to import
    from rltrader.records import WalkForwardSummary
    from rltrader.tuning.study import StudyResult

LOGGER_NAME = "rltrader"


def _prefect_environment() -> None:
    """Settings that must be in place before Prefect is imported: the ``flows`` package sets them."""
    import flows  # noqa: F401


def _quiet_prefect_tracebacks_for_user_errors(verbose: int = 1) -> None:
    """One line for a user error: Prefect's own records of it stay in the UI (and at --verbose 2)."""
    from flows.console import hide_user_error_records

    hide_user_error_records(verbose)


T = typing.TypeVar("T")


def _start_server(config: Config, verbose: int = 1) -> Any:
    """The Prefect server this command's flows report to (``flows.server.command_server``); its line first."""
    from flows.server import command_server

    server = command_server(config.orchestration.server_host, config.orchestration.server_port)
    if verbose:
        print(server.describe(), file=sys.stderr, flush=True)
    return server


def _run_flow(server: Any, work: typing.Callable[[], T]) -> T:
    """Run ``work`` (a flow call) once the server answers, so that Ctrl-C and SIGTERM stop it within seconds
    (``rltrader.runtime.interrupts``); the server this command started is stopped after it."""
    from rltrader.runtime.interrupts import run_stoppable

    def when_ready() -> T:
        server.wait_until_ready()
        return work()

    return run_stoppable(when_ready, cleanup=server.stop, on_stop=_print_stopped,
                         keep=lambda: [server.process.pid] if server.process else [])


RESUMABLE = {"train", "walkforward", "tune", "paper", "retrain"}


def _print_stopped(signum: int) -> None:
    """The command's last line after a signal: what stopped it, and how to go on."""
    import shlex
    import signal

    name = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, signal.Signals(signum).name)
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in RESUMABLE:
        print(f"rltrader: stopped by {name}; the work up to the last checkpoint is kept. To resume, run the same "
              f"command: {shlex.join(['rltrader', *sys.argv[1:]])}", file=sys.stderr, flush=True)
    else:
        print(f"rltrader: stopped by {name}", file=sys.stderr, flush=True)


PATH_FIELDS = {"data_path", "config", "cache_dir", "results_dir", "settings_file"}
"""Request fields that are paths: ``Path`` in the parsed flags, text in the request (JSON, the UI form)."""


def _scalar(annotation: Any) -> type:
    """``int`` for ``int | None``, and so on: the type argparse converts a flag's value to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def add_request_flags(parser: argparse.ArgumentParser, names: Iterable[str], required: Iterable[str] = (),
                      model: type[BaseModel] = TrainRequest) -> None:
    """One flag per :class:`~rltrader.app.requests.TrainRequest` field, spelt as the field, its help its description.

    A switch (an optimization) is ``--no-NAME``; a plain boolean ``--NAME``; a tri-state
    boolean ``--NAME`` / ``--no-NAME`` (unset means detect); anything else takes a value.
    """
    for name in names:
        field = model.model_fields[name]
        help_text = (field.description or "").replace("%", "%%")
        if name in SWITCHES:
            what = help_text.split(". Off")[0]
            parser.add_argument(f"--no-{name}", dest=name, action="store_false", help=f"turn {name} off ({what})")
        elif field.annotation is bool:
            parser.add_argument(f"--{name}", action="store_true", help=help_text)
        elif _scalar(field.annotation) is bool:
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(_scalar(field.annotation)) is list:
            item = typing.get_args(_scalar(field.annotation))[0]
            parser.add_argument(f"--{name}", type=item, nargs="+", default=field.default, help=help_text)
        elif typing.get_origin(_scalar(field.annotation)) is typing.Literal:
            parser.add_argument(f"--{name}", choices=typing.get_args(_scalar(field.annotation)), default=field.default,
                                help=help_text)
        else:
            kind = Path if name in PATH_FIELDS else _scalar(field.annotation)
            default = kind(field.default) if kind is Path and field.default is not None else field.default
            parser.add_argument(f"--{name}", type=kind, default=None if name in required else default,
                                required=name in required, help=help_text)


def request_from_args(args: argparse.Namespace, fields: Iterable[str] = tuple(TrainRequest.model_fields),
                      model: type[Any] = TrainRequest) -> Any:
    """The request that the parsed flags among ``fields`` spell (fields without a flag keep their defaults)."""
    given = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    given = {name: str(value) if isinstance(value, Path) else value for name, value in given.items()}
    try:
        return model(**given)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise UserInputError(f"--{first['loc'][0]} {message}") from None


CONFIG_FIELDS = ("data_path", *LOADING_FIELDS, *ACCOUNT_FIELDS, "config", "cache_dir", "cache_environments")
"""What the commands other than ``train`` take from the request: the file, how to read bars, the cache."""


def _resolve_config(args: argparse.Namespace) -> Config:
    """The config file with the command's flags for reading bars and for the cache."""
    return request_from_args(args, CONFIG_FIELDS).to_config()


def _command_preprocess(args: argparse.Namespace) -> int:
    config = _resolve_config(args)
    require_bar_file(str(args.data_path), config)
    use_cache = config.optimizations.cache_environments
    from rltrader.features.preparation import PreparedData, check_bars

    check_bars(args.data_path, config)  # a bad file is one line in a second, before any server starts
    server = _start_server(config)
    try:
        _prefect_environment()
        from flows.preprocess import preprocess_flow  # Prefect import: seconds, so only here
        from rltrader.display.data_report import data_report_text

        _quiet_prefect_tracebacks_for_user_errors()
        started = time.perf_counter()
        result = _run_flow(server, lambda: preprocess_flow(str(args.data_path), config.model_dump(mode="json"),
                                                           use_cache))
    finally:
        server.stop()
    prepared = PreparedData.from_dict(result)
    if args.json:
        print(json.dumps(prepared.to_dict(), indent=2))
    else:
        print(f"\nrltrader preprocess: {args.data_path}")
        print(data_report_text(prepared, config))
        print(f"  {'done':<13}  in {time.perf_counter() - started:.1f}s through {server.name}\n")
    return 0


def _settings_file(args: argparse.Namespace, config: Config) -> Path:
    return args.settings_file or config.performance_mode.settings_file


def _console_log_level(verbose: int) -> None:
    """Terminal logging by --verbose; the Prefect UI still gets every log line."""
    from flows.console import console_handlers

    for handler in console_handlers():
        handler.setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


def require_bar_file(data_path: str, config: Config) -> None:
    """A missing bar file, or a cross without a conversion file, is one line before Prefect starts
    (seconds saved, no server for nothing, nothing written)."""
    if not Path(data_path).is_file():
        raise UserInputError(f"{data_path}: bar file not found; pass an existing CSV/TSV/parquet to --data_path")
    from rltrader.env.account import account_terms

    account_terms(config, data_path)


def _command_train(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    config = request.to_config()
    require_bar_file(request.data_path, config)
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free

    check_bars(request.data_path, config)  # bad bars: one line in a second, before any server starts
    seed = config.training.seed
    run_dir = request.run_path(seed)
    if not args.benchmark_mode:
        check_run_directory_free(run_dir)
    server = _start_server(config, args.verbose)
    try:
        return _train_with_server(args, request, config, server)
    finally:
        server.stop()


def _train_with_server(args: argparse.Namespace, request: TrainRequest, config: Config, server: Any) -> int:
    _prefect_environment()
    from rich.console import Console

    from flows.benchmark import benchmark_pipeline  # Prefect import: seconds, so only here
    from flows.train import train_pipeline
    from rltrader.app.progress import LiveProgress
    from rltrader.display.tables import comparison_table, comparison_verdict, final_tables

    _quiet_prefect_tracebacks_for_user_errors(args.verbose)
    _console_log_level(args.verbose)
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 120)
    seed = config.training.seed
    show = {"bars": args.verbose == 1, "lines": args.verbose == 1}
    if args.benchmark_mode:
        from flows.benchmark import benchmark_dir
        from rltrader.app.benchmark import benchmark_seeds

        seeds = benchmark_seeds(seed, request.benchmark_seeds)
        dirs = [benchmark_dir(request, each) for each in seeds]
        with contextlib.ExitStack() as stack:
            for each, run_dir in zip(seeds, dirs, strict=True):
                seeded = config.with_overrides({"training.seed": each}, source="benchmark seed")
                stack.enter_context(LiveProgress(run_dir / "original", seeded.original_method(), console, **show))
                stack.enter_context(LiveProgress(run_dir / "optimized", seeded, console, **{**show, "bars": False}))
            quality = _run_flow(server, lambda: benchmark_pipeline(request))
        console.print(comparison_table(quality))
        print(comparison_verdict(quality))  # one line, never wrapped: scripts grep it
        console.print(f"  wrote {dirs[0] / 'quality.json'} and each seed's comparison.json "
                      f"({', '.join(map(str, dirs))})")
        return 0
    run_dir = request.run_path(seed)
    with LiveProgress(run_dir, config, console, parallel_candidates=request.parallel_candidates, **show):
        summary = _run_flow(server, lambda: train_pipeline(request))
    for table in final_tables(summary):
        console.print(table)
    console.print(f"rltrader train ({summary.method}, seed {seed}): {len(summary.iterations)} iterations, "
                  f"{summary.total_timesteps:,} timesteps in {summary.total_time_seconds / 60:.1f} min, "
                  f"speedup {summary.total_speedup_achieved:.2f}x ({summary.speedup_basis}), "
                  f"{summary.total_timesteps_saved:,} timesteps saved")
    console.print(f"  best model  {summary.best_model.path}\n  report      {summary.report}\n"
                  f"  summary     {run_dir / 'optimization_summary.json'}\n"
                  f"  bundle      {run_dir / 'bundle'}  (the model and all it needs; `rltrader export` copies it)")
    return 0


def _command_tune(args: argparse.Namespace) -> int:
    from rltrader.app.requests import TuneRequest
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free

    request = request_from_args(args, tuple(TuneRequest.model_fields), TuneRequest)
    config = request.to_config()  # a bad config fails here, before Prefect starts
    require_bar_file(request.data_path, config)
    check_bars(request.data_path, config)
    check_run_directory_free(request.root, STUDY_REMEDY)
    def study(level: int) -> StudyResult:
        from flows.tune import tune_study  # Prefect import: seconds, so only here

        return tune_study(request, trial_console_level=level)

    result = run_with_progress_lines(config, args.verbose, ("Trial ", "Study ", "Resuming"), study)
    print(f"rltrader tune {result.study}: {result.finished} trials finished in {result.root}")
    if result.best_trial is None or result.best_value is None:
        print("  no trial completed (every one pruned or failed): nothing to write")
        return 0
    print(f"  best        trial {result.best_trial}, validation {result.best_value:.3f}: {result.best_params}")
    print(f"  config      {result.best_config}  (rltrader train --config {result.best_config})")
    root = Path(result.root)
    print(f"  trials      {root / 'trials.json'}; importances {root / 'importances.json'}")
    return 0


STUDY_REMEDY = "pass another --name"


def _command_walkforward(args: argparse.Namespace) -> int:
    from rltrader.app.requests import WalkForwardRequest
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free
    from rltrader.walkforward.data import prepare_folds
    from rltrader.walkforward.runs import check_plan, walk_plan

    request = request_from_args(args, tuple(WalkForwardRequest.model_fields), WalkForwardRequest)
    config = request.to_config()  # a bad config fails here, before Prefect starts
    require_bar_file(request.data_path, config)
    # bad bars, folds that do not fit or a results directory planned otherwise: one line, before Prefect starts
    check_bars(request.data_path, config)
    folds, prepared = prepare_folds(request.data_path, config)
    check_run_directory_free(request.root, STUDY_REMEDY)  # before check_plan, which writes a new directory's plan
    check_plan(request.root, walk_plan(config, [fold.to_dict() for fold in folds],
                                       prepared[0].metadata["source"]["sha256"]))
    def walk(level: int) -> WalkForwardSummary:
        from flows.walkforward import walk_forward  # Prefect import: seconds, so only here

        return walk_forward(request, fold_console_level=level)

    result = run_with_progress_lines(config, args.verbose, ("Fold ", "Walk-forward ", "Resuming"), walk)
    from rich.console import Console
    from rich.table import Table

    from rltrader.display.tables import account_text
    from rltrader.display.walkforward import aggregate_lines

    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 180)
    rows = result.fold_table
    table = Table(title=f"Walk-forward {result.name}: each fold's best model on its test window")
    for column in rows[0]:
        table.add_column(column, justify="left" if column.startswith("test") else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)
    for line in aggregate_lines(result.aggregate, result.warm_start):
        console.print(line)
    console.print(account_text(result))
    files = result.files
    console.print(f"  stitched equity  {files['stitched_equity']} and {Path(files['plot']).name}\n"
                  f"  summary          {Path(result.root or '.') / 'summary.json'}")
    return 0


def run_with_progress_lines(config: Config, verbose: bool, prefixes: tuple[str, ...],
                             flow_call: typing.Callable[[int], T]) -> T:
    """``walkforward`` and ``tune``: their server, one console line per finished run (every line with
    ``--verbose``), then the flow, stoppable; ``flow_call`` gets the workers' console level."""
    server = _start_server(config)
    try:
        _prefect_environment()
        import prefect.main  # noqa: F401 - Prefect sets its logging (the console handlers) up here

        _quiet_prefect_tracebacks_for_user_errors(2 if verbose else 1)
        _console_log_level(2 if verbose else 1)
        _show_flow_progress(prefixes)
        level = logging.INFO if verbose else logging.WARNING
        return _run_flow(server, lambda: flow_call(level))
    finally:
        server.stop()


def _show_flow_progress(prefixes: tuple[str, ...]) -> None:
    """The flow's progress lines (those starting with ``prefixes``) on the terminal at the default verbosity."""
    from flows.console import console_handlers

    class _ProgressLines(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or record.getMessage().startswith(prefixes)

    for handler in console_handlers():
        handler.setLevel(logging.INFO)
        handler.addFilter(_ProgressLines())


def _command_compare(args: argparse.Namespace) -> int:
    from rltrader.app.benchmark import compare_runs
    from rltrader.training.summary import load_summary

    comparison = compare_runs([load_summary(path) for path in args.original],
                              [load_summary(path) for path in args.optimized])
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
        return 0
    from rich.console import Console

    from rltrader.display.tables import comparison_table, comparison_verdict

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    console.print(comparison_table(comparison))
    print(comparison_verdict(comparison))  # one line, never wrapped: scripts grep it
    return 0


def _human_bytes(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def _command_mode(args: argparse.Namespace) -> int:
    from rltrader.runtime.performance_mode import parse_settings, read_status, write_mode

    path = _settings_file(args, _resolve_config(args))
    if args.mode != "status":
        try:
            write_mode(path, args.mode)
        except OSError as error:
            raise UserInputError(f"{path}: cannot write ({error.strerror}); check --settings_file") from None
        print(f"Performance mode set to {args.mode} in {path}; running training applies it before its next update")
        return 0
    reading = parse_settings(path)
    print(f"on disk   {reading.mode}" + (f" ({reading.problem})" if reading.problem else f" ({path})"))
    status = read_status(args.results_dir)
    if status is None:
        print(f"applied   no training under {args.results_dir}/ has applied a mode yet")
        return 0
    print(f"applied   {status['mode']} by {status['run_dir']} at {status['applied_at']} (batch "
          f"{status['batch_size']}, epochs {status['n_epochs']}, threads {status['torch_threads']}; "
          f"{_RUNNING[_process_alive(int(status['pid']))]}pid {status['pid']})")
    return 0


_RUNNING = {True: "running, ", False: "not running, ", None: ""}


def _process_alive(pid: int) -> bool | None:
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


def _command_clear_cache(args: argparse.Namespace) -> int:
    from rltrader.features.cache import FeatureStore

    config = _resolve_config(args)
    store = FeatureStore(config.cache.dir)
    paths, freed = store.clear(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in paths:
        print(f"  {verb} {path}")
    print(f"{verb} {len(paths)} item(s), {_human_bytes(freed)} from {store.root}")
    return 0


def _command_export(args: argparse.Namespace) -> int:
    from rltrader.live.bundle import export_bundle

    if args.format == "onnx":
        from rltrader.live.onnx_export import GRAPH_FILE, export_onnx

        bundle, report = export_onnx(str(args.run_dir), str(args.out), str(args.data_path) if args.data_path else None)
        print(f"rltrader export: {bundle.root / GRAPH_FILE} ({report['graph_bytes']:,} bytes, opset "
              f"{report['opset']}); on the test split's {report['bars']:,} bars against the backtest: "
              f"{len(report['mismatches'])} action mismatches, probabilities within "
              f"{report['max_probability_abs_diff']:.2g}, features within "
              f"{report['max_feature_abs_diff']:.2g}; {report['p50_ms']:.3f} ms per bar in onnxruntime "
              f"(p99 {report['p99_ms']:.3f})")
    else:
        bundle = export_bundle(args.run_dir, args.out)
    about = bundle.description
    sharpe = about.figures.get("test", {}).get("agent", {}).get("sharpe")
    print(f"rltrader export: {bundle.root} ({about.algorithm} policy, {about.symbol or 'symbol unknown'}, "
          f"{about.bar_interval_seconds / 60:g}-min bars, {len(about.feature_columns)} features x window "
          f"{about.window_size}, warm-up {about.warmup_bars:,} bars; test Sharpe "
          f"{'n/a' if sharpe is None else f'{sharpe:.2f}'})")
    print(f"  trained on   {about.training_data.path} ({about.training_data.bars:,} bars, "
          f"{about.training_data.start[:10]} to {about.training_data.end[:10]}, sha256 "
          f"{about.training_data.sha256[:12]})")
    print(f"  files        {', '.join(sorted(path.name for path in bundle.root.iterdir()))}")
    return 0


def _command_signal(args: argparse.Namespace) -> int:
    import json
    import time

    from rltrader.live.bars import parse_bar_time, read_bar_file
    from rltrader.live.bundle import read_bundle
    from rltrader.live.signal import FileWatcher, decision_record, last_decision_index, read_when_complete

    bundle = read_bundle(args.bundle)
    read_bar_file(args.data_path, bundle.description)  # refuse a wrong file before torch loads
    start = parse_bar_time(args.start)
    from rltrader.live.stream import DecisionStream

    stream = DecisionStream(bundle, start)
    watcher = FileWatcher(Path(args.data_path), args.poll)
    seen = watcher.signature()  # before the read: a bar appended while reading is a change
    began = time.perf_counter()
    bar_file = read_bar_file(args.data_path, bundle.description)
    batch = stream.advance(bar_file.bars)
    record = decision_record(stream, batch, last_decision_index(batch))
    record["seconds"] = round(time.perf_counter() - began, 3)
    print(json.dumps(record), flush=True)
    if not args.follow:
        return 0
    print(f"rltrader signal: following {args.data_path} (a line per new closed bar; Ctrl-C stops)", file=sys.stderr,
          flush=True)
    for _ in watcher.changes(seen):
        bar_file = read_when_complete(lambda: read_bar_file(args.data_path, bundle.description, need_history=False),
                                      watcher)
        new = bar_file.after(stream.last_time)
        if not len(new):
            continue
        batch = stream.advance(new)
        for stamp, why in batch.rejected:
            print(f"rltrader signal: skipped bar {_iso_ns(stamp)}: {why}", file=sys.stderr, flush=True)
        for index in range(len(batch)):
            print(json.dumps(decision_record(stream, batch, index)), flush=True)
    return 0


def _iso_ns(stamp: int) -> str:
    from rltrader.live.stream import bar_time

    return bar_time(stamp)


def _paper_lines(account: typing.Any, rows: int) -> list[str]:
    """The last ``rows`` ledger rows as the terminal shows them."""
    frame = account.ledger_frame().tail(rows)
    lines = []
    for row in frame.itertuples(index=False):
        traded = row.fill_price is not None and row.fill_price == row.fill_price  # not None, not NaN
        filled = (f"-> {row.filled:<5} @ {row.fill_price:<10,.2f}" if traded else
                  f"holds {row.filled:<5}{'':<9}" if row.filled else f"{'':<20}")
        decision = (f"next: {row.decision} (p={max(row.p_short, row.p_flat, row.p_long):.2f})" if row.decision
                    else "no decision")
        lines.append(f"  {row.time}  {filled} units {row.units:>9,.4f}  equity {row.equity:,.2f}  "
                     f"buy-and-hold {row.buy_and_hold:,.2f}  {decision}")
    return lines


def _command_paper(args: argparse.Namespace) -> int:
    from rltrader.live.paper import holding, open_paper_account, paper_summary, write_paper_report
    from rltrader.live.signal import FileWatcher, read_when_complete

    account = open_paper_account(args.bundle, args.data_path, args.name, args.paper_dir, args.start, args.model,
                                 args.registry_dir)

    def switch() -> None:
        changed = account.follow_champion()
        if changed:
            print(f"rltrader paper {args.name}: {args.model} v{changed['to_version']} takes over from "
                  f"v{changed['from_version']} after bar {changed['after_bar']}, position carried "
                  f"({changed['reason']})", flush=True)

    def step(bars: typing.Any) -> None:
        before = len(account.ledger["time"])
        batch = account.process(bars)
        for stamp, why in batch.rejected:
            print(f"rltrader paper: skipped bar {_iso_ns(stamp)}: {why}", file=sys.stderr, flush=True)
        added = len(account.ledger["time"]) - before
        if added > 8:
            print(f"  ... {added - 8:,} earlier bars in {account.root / 'ledger.csv'}")
        for line in _paper_lines(account, min(added, 8)):
            print(line, flush=True)
        paths = write_paper_report(account)
        summary = paper_summary(account)
        paper, hold = summary.get("paper", {}), summary.get("buy_and_hold", {})
        if paper:
            print(f"rltrader paper {args.name}: {summary['bars']:,} bars since {summary['first_bar']}, equity "
                  f"{paper['final_equity']:,.2f} ({100 * paper['total_return']:+.2f}%), buy-and-hold "
                  f"{hold['final_equity']:,.2f} ({100 * hold['total_return']:+.2f}%), holding {summary['position']}, "
                  f"next: {summary['next_decision'] or 'none'}; {paths['picture']}", flush=True)

    watcher = FileWatcher(Path(args.data_path), args.poll)
    seen = watcher.signature()  # before the read: a bar appended while reading is a change
    bars = account.new_bars()  # a wrong file is refused here, before anything is written
    with holding(account):
        switch()
        if len(bars) or account.created:
            step(bars)
        else:
            print(f"rltrader paper {args.name}: no new bar after {_iso_ns(account.last_time)} in {args.data_path}",
                  flush=True)
        if not args.follow:
            return 0
        print(f"rltrader paper: following {args.data_path} (Ctrl-C stops; the same command resumes)",
              file=sys.stderr, flush=True)
        for _ in watcher.changes(seen):
            switch()
            bars = read_when_complete(account.new_bars, watcher)
            if len(bars):
                step(bars)
    return 0


def _command_evaluate(args: argparse.Namespace) -> int:
    from rltrader.display.tables import evaluation_text
    from rltrader.env import MarketData
    from rltrader.evaluation.loading import load_model
    from rltrader.evaluation.report import evaluate_model, write_report
    from rltrader.features.preparation import preprocess

    config = _resolve_config(args)
    require_bar_file(str(args.data_path), config)
    model = load_model(args.model)
    market = MarketData.from_prepared(preprocess(args.data_path, config), config, args.data_path)
    report = evaluate_model(model, market, args.split, config.env, seed=args.seed, evaluator=args.evaluator)
    out_dir = args.out or Path("results") / "evaluations" / f"{Path(args.model).stem}-{args.split}"
    paths = write_report(report, out_dir)
    print(evaluation_text(report))
    print(f"\n  wrote {paths['metrics']}, {paths['equity'].name}, {paths['plot'].name}")
    return 0


def _command_synth(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from rltrader.data.known_answer import sidecar_path
    from rltrader.data.synthetic import write_market

    settings = {name: getattr(args, name) for name in KnownAnswerMarket.model_fields
                if name not in ("sha256",) and getattr(args, name, None) is not None}
    try:
        market = KnownAnswerMarket(**settings)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserInputError(f"--{first['loc'][0]}: {first['msg']}") from None
    out = args.out or Path("data") / "synthetic" / f"{market.kind}_seed{market.seed}.csv"
    if out.suffix.lower() != ".csv":
        raise UserInputError(f"--out {out}: known-answer markets are written as MT5 CSV; give a .csv path")
    written = write_market(market, out)
    print(f"rltrader synth: {written.bars:,} {written.bar_minutes}-minute bars of a {written.kind} market "
          f"(seed {written.seed}, spread {written.spread_points} points) -> {out}\n"
          f"  generator and oracle: {sidecar_path(out)}\n"
          f"  train on it: rltrader train --data_path {out}   (reports then show the oracle and edge captured)")
    return 0


def _command_serve(args: argparse.Namespace) -> int:
    _prefect_environment()
    from deployments.serve import PaperDefaults, serve_deployments

    config = _resolve_config(args)
    paper = PaperDefaults(bundle=args.paper_bundle or args.results_dir / str(config.training.seed) / "bundle",
                          data_path=args.paper_data_path or args.data_path, name=args.paper_name,
                          start=args.paper_start, every_minutes=args.paper_every, model=args.paper_model)
    return serve_deployments(config, args.config, args.data_path, args.results_dir,
                             _settings_file(args, config), args.host, args.port, args.cache_dir, paper,
                             args.retrain_name)


def after_loading(names: Iterable[str]) -> list[str]:
    """Request fields in help order: the account and instrument flags right after the bar file's."""
    rest = [name for name in names if name not in ACCOUNT_FIELDS]
    last = LOADING_FIELDS[-1] if LOADING_FIELDS[-1] in rest else "data_path"
    at = rest.index(last) + 1
    return [*rest[:at], *ACCOUNT_FIELDS, *rest[at:]]


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """The bar file and how to read it: every command that reads bars takes the same overrides."""
    add_request_flags(parser, ("data_path", *LOADING_FIELDS, *ACCOUNT_FIELDS), required=("data_path",))


def _add_live_options(parser: argparse.ArgumentParser, start_help: str, bundle_required: bool = True) -> None:
    """The options of the commands that decide on a bar file: the bundle, the file, when to start, following."""
    parser.add_argument("--bundle", type=Path, required=bundle_required,
                        help="a bundle (rltrader export, or RUN_DIR/bundle)")
    parser.add_argument("--data_path", type=Path, required=True, help="bar file (a terminal export that grows)")
    parser.add_argument("--start", default=None, help=start_help)
    parser.add_argument("--follow", action="store_true", help="keep watching the file for new bars (Ctrl-C stops)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the file (--follow)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    add_request_flags(parser, ("config", "cache_dir"))


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (what is wrong and where to look), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    add_request_flags(pre, ("cache_environments",))
    pre.add_argument("--json", action="store_true", help="print the result as JSON instead of the report")
    _add_config_options(pre)
    pre.set_defaults(handler=_command_preprocess)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved model on one split against buy-and-hold, flat and 1,000 random policies",
        description="Run a saved model deterministically over a whole split, score it and the baselines "
        "on the same bars and costs (each Sharpe with its 95%% interval; the agent ranked among 1,000 random "
        "policies with its turnover; the oracle on a known-answer market), and write metrics.json, "
        "equity.parquet and equity.png.",
    )
    evaluate.add_argument("--model", type=Path, required=True,
                          help="PPO or RecurrentPPO .zip saved by stable-baselines3 (best_model.zip)")
    _add_data_options(evaluate)
    evaluate.add_argument("--split", choices=("validation", "test", "train"), default="validation",
                          help="split to evaluate (default: validation; keep test for the final report)")
    evaluate.add_argument("--evaluator", choices=("fast", "reference"), default="fast",
                          help="fast (numpy, default) or reference (model.predict per bar); same results")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the random policies the agent is ranked among (default: 0)")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output directory (default: results/evaluations/<model>-<split>)")
    _add_config_options(evaluate)
    evaluate.set_defaults(handler=_command_evaluate)

    train = commands.add_parser(
        "train",
        help="train PPO agents (recurrent by default) iteratively with the optimizations on (resumable)",
        description="Train iteratively on the training split, keep the best model by validation score, "
        "report it against buy-and-hold on the test split. Re-running the same command resumes.",
    )
    add_request_flags(train, after_loading(name for name in TrainRequest.model_fields if name not in FLOW_ONLY),
                      required=("data_path",))
    train.add_argument("--benchmark_mode", action="store_true",
                       help="run the original and the optimized method on the same data and seeds "
                       "(--benchmark_seeds, default 5), then judge quality on test over the seeds")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="0: final table only; 1: progress bars and a line per iteration (default); 2: every log")
    train.set_defaults(handler=_command_train)

    compare = commands.add_parser(
        "compare", help="compare finished original and optimized runs: time, timesteps, quality over seeds",
        description="Side by side: wall time, timesteps, early stops, warm starts, validation and test metrics "
        "and the speedup. Quality is judged on the test split (which selected neither model), as optimized - "
        "original per seed (runs paired in the order given) with a 90%% interval: test edge captured on "
        "known-answer markets, else test Sharpe. 'Quality held' needs the interval's lower end above minus the "
        "tolerance (1.0 Sharpe, or 5 points of edge); otherwise it is 'not shown'.")
    compare.add_argument("--original", type=Path, nargs="+", required=True,
                         help="run directories of the baseline, one per seed, e.g. results/benchmark-42/original")
    compare.add_argument("--optimized", type=Path, nargs="+", required=True,
                         help="run directories to compare, in the same seed order")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(handler=_command_compare)

    from rltrader.app.requests import TuneRequest

    tune = commands.add_parser(
        "tune", help="search config keys (tune.space) with Optuna on validation; write the best as a config file",
        description="Optuna study (TPE sampler, median pruner on the validation looks) over tune.space in the "
                    "config; trials train in parallel (a process pool, or Dask with --dask_address), the study is "
                    "kept in SQLite under RESULTS_DIR/tune-NAME/ (or --storage) and resumes after a kill. "
                    "The test split is never used.")
    add_request_flags(tune, tuple(TuneRequest.model_fields), model=TuneRequest)
    tune.add_argument("--verbose", action="store_true", help="every log line, not only one line per trial")
    tune.set_defaults(handler=_command_tune)

    from rltrader.app.requests import WalkForwardRequest

    walk = commands.add_parser(
        "walkforward", help="walk-forward analysis: retrain on a moving window, test the next period, stitch the tests",
        description="Split the file into folds (walk_forward: in the config; rolling or anchored windows, each with "
                    "its own train / validation / test and normalization), train one run per fold and seed with every "
                    "optimization (in parallel with --parallel in performance mode, or on Dask), score each fold's "
                    "best model once on its test window, and stitch the test windows into one out-of-sample equity "
                    "curve against buy-and-hold. Results go to RESULTS_DIR/walkforward-NAME/; re-running resumes.")
    add_request_flags(walk, after_loading(WalkForwardRequest.model_fields), model=WalkForwardRequest)
    walk.add_argument("--verbose", action="store_true", help="every log line, not only one line per fold")
    walk.set_defaults(handler=_command_walkforward)

    mode = commands.add_parser(
        "mode", help="switch running and future training between quiet and performance, or show the mode",
        description="quiet: configured batch and epochs, fewer threads, lower priority (the machine stays "
        "usable); performance: batch x2, epochs x1.5, every core. Training applies it before its next update.")
    mode.add_argument("mode", choices=["quiet", "performance", "status"])
    mode.add_argument("--settings_file", type=Path, default=None, help="default: settings.json")
    mode.add_argument("--results_dir", type=Path, default=Path("results"),
                      help="where status looks for the mode trainings applied (default: results)")
    add_request_flags(mode, ("config",))
    mode.set_defaults(handler=_command_mode)

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
    serve.add_argument("--retrain_name", default=None,
                       help="the model the nightly retrain deployment keeps current (default: the bar file's stem)")
    _add_config_options(serve)
    serve.set_defaults(handler=_command_serve)

    export = commands.add_parser(
        "export", help="write a finished run's model as a self-contained bundle (policy, features, normalization, "
                       "costs, manifest)",
        description="Copy the bundle a finished run wrote (RUN_DIR/bundle: the policy, the feature definition, the "
        "train-split normalization, the instrument, account, sizing and cost terms, the bar interval, the warm-up, "
        "the training data's fingerprint, the run's figures, and a manifest with the SHA-256 of every file) to "
        "OUT, verified against its manifest. It needs no bar file, cache or config.")
    export.add_argument("run_dir", type=Path, help="a finished run's directory (e.g. results/42) or a bundle")
    export.add_argument("--out", type=Path, required=True, help="the bundle's directory (new, or a bundle to replace)")
    export.add_argument("--format", choices=("bundle", "onnx"), default="bundle",
                        help="onnx adds model.onnx (features, normalization, policy and state in one graph, opset 17) "
                             "and its parity on the test split (onnx_parity.json)")
    export.add_argument("--data_path", type=Path, default=None,
                        help="--format onnx: the bars the model trained on (default: the file the bundle names)")
    export.set_defaults(handler=_command_export)

    signal_parser = commands.add_parser(
        "signal", help="print a bundle's decision for the next bar of a bar file, as one JSON line",
        description="Read the bar file, warm the bundle's features up on its history, and print the decision at "
        "the last closed bar (action, probabilities, the bar it was decided on, the bars of history behind it) as "
        "one JSON line. The account behind it starts flat after the warm-up (or at --start) and trades every bar "
        "since, as the backtest does. --follow watches the file and prints a line per new closed bar.")
    _add_live_options(signal_parser, "first bar to decide on (default: after the warm-up)")
    signal_parser.set_defaults(handler=_command_signal)

    paper = commands.add_parser(
        "paper", help="paper-trade a bundle on a bar file: each new closed bar decided, filled at the next open",
        description="Open (or continue) the paper account NAME: every bar of the file after the last processed one "
        "is decided at its close and filled at the next bar's open with the backtest's ledger, costs and sizing. "
        "The ledger, keyed by bar time, is written atomically after each batch: a killed run loses nothing, and the "
        "same command continues it. Writes ledger.csv, summary.json and equity.png under --paper_dir/NAME.")
    _add_live_options(paper, "a new account's first decision bar (default: the newest bar when it opens)",
                      bundle_required=False)
    paper.add_argument("--model", default=None,
                       help="instead of --bundle: follow this registry model's champion (rltrader retrain), switching "
                            "to a newly promoted one at the next bar with the position carried")
    paper.add_argument("--registry_dir", type=Path, default=Path("results/registry"),
                       help="where model registries live (default: results/registry)")
    paper.add_argument("--name", required=True, help="the paper account's name")
    paper.add_argument("--paper_dir", type=Path, default=Path("results/paper"),
                       help="where paper accounts live (default: results/paper)")
    paper.set_defaults(handler=_command_paper)

    synth = commands.add_parser(
        "synth", help="write a known-answer market: bars with a planted edge whose oracle is known",
        description="Write bars (MT5 CSV) with a planted, learnable edge: AR(1) momentum, a time-of-day drift, "
        "mean reversion, a volume-led continuation, a drift in calm volatility spells, a day-of-week drift, a "
        "session-dependent trend (two features at once), or time-of-day blocks that swap signs partway "
        "(regime_change), with a per-bar spread and a seed; the generator goes beside the file "
        "(<file>.oracle.json), so every report on it scores the oracle and the edge the agent captured.")
    synth.add_argument("kind", choices=MARKET_KINDS, help="which edge to plant")
    synth.add_argument("--out", type=Path, default=None,
                       help="CSV to write (default: data/synthetic/<kind>_seed<seed>.csv)")
    for name, field in KnownAnswerMarket.model_fields.items():
        if name in ("kind", "sha256"):
            continue
        synth.add_argument(f"--{name}", type=_scalar(field.annotation), default=None,
                           help=f"{field.description or name} (default: {field.default})".replace("%", "%%"))
    synth.set_defaults(handler=_command_synth)

    from rltrader.app.registry_commands import add_registry_commands

    add_registry_commands(commands)

    clear = commands.add_parser("clear-cache", help="remove cached features and Prefect cache records")
    clear.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                       help="only list what would be removed")
    _add_config_options(clear)
    clear.set_defaults(handler=_command_clear_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rltrader.runtime.interrupts import stop_on_sigterm

    args = build_parser().parse_args(argv)
    try:
        with stop_on_sigterm():
            return args.handler(args)
    except UserInputError as error:
        print(f"rltrader: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as stop:  # Ctrl-C, or a SIGTERM (rltrader.runtime.interrupts.Stopped)
        import signal

        signum = getattr(stop, "signum", signal.SIGINT)
        _print_stopped(signum)
        return 128 + signum


def entry_point() -> None:
    sys.exit(main())
