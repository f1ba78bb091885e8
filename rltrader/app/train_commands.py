"""``rltrader train`` (and its benchmark mode), ``compare`` and ``evaluate``: training runs and their judgement.

Each handler parses its flags, calls the domain (the Prefect flows for training) and prints what
:mod:`rltrader.display` formats. Torch and Prefect are imported in the handler that runs them, after the
input checks: a bad file is one line in a second, and ``rltrader --help`` stays under a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from rltrader.app.arguments import (
    add_config_options,
    add_data_options,
    add_request_flags,
    after_loading,
    request_from_args,
    require_bar_file,
    resolve_config,
)
from rltrader.app.orchestration import (
    console_log_level,
    prefect_environment,
    quiet_prefect_tracebacks_for_user_errors,
    run_flow,
    start_server,
)
from rltrader.config import Config
from rltrader.display.training import benchmark_files_line, resume_line, train_done_lines
from rltrader.jobs.requests import FLOW_ONLY, TrainRequest
from rltrader.training.resume import resume_point
from rltrader.training.run_state import fingerprint


def _console(width: int) -> Console:
    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else width)


def train_command(args: argparse.Namespace) -> int:
    """Check the inputs, say where a resumed run goes on from, then train through the Prefect flow."""
    from rltrader.features.cache import file_digest
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free

    request = request_from_args(args)
    config = request.to_config()
    require_bar_file(request.data_path, config)
    check_bars(request.data_path, config)  # bad bars: one line in a second, before any server starts
    run_dir = request.run_path(config.training.seed)
    if not args.benchmark_mode:
        check_run_directory_free(run_dir)
        point = resume_point(run_dir, lambda: fingerprint(config, file_digest(request.data_path)))
        if point is not None and args.verbose:
            print(resume_line(point, config.training.iterations), flush=True)
    server = start_server(config, args.verbose)
    try:
        return _train_with_server(args, request, config, server)
    finally:
        server.stop()


def _train_with_server(args: argparse.Namespace, request: TrainRequest, config: Config, server: Any) -> int:
    prefect_environment()
    from flows.benchmark import benchmark_dir, benchmark_pipeline  # Prefect import: seconds, so only here
    from flows.train import train_pipeline
    from rltrader.app.progress import LiveProgress
    from rltrader.display.tables import comparison_table, comparison_verdict, final_tables
    from rltrader.training.benchmark import benchmark_seeds

    quiet_prefect_tracebacks_for_user_errors(args.verbose)
    console_log_level(args.verbose)
    console = _console(120)
    seed = config.training.seed
    show = {"bars": args.verbose == 1, "lines": args.verbose == 1}
    if args.benchmark_mode:
        seeds = benchmark_seeds(seed, request.benchmark_seeds)
        dirs = [benchmark_dir(request, each) for each in seeds]
        with contextlib.ExitStack() as stack:
            for each, run_dir in zip(seeds, dirs, strict=True):
                seeded = config.with_overrides({"training.seed": each}, source="benchmark seed")
                stack.enter_context(LiveProgress(run_dir / "original", seeded.original_method(), console, **show))
                stack.enter_context(LiveProgress(run_dir / "optimized", seeded, console, **{**show, "bars": False}))
            quality = run_flow(server, lambda: benchmark_pipeline(request))
        console.print(comparison_table(quality))
        print(comparison_verdict(quality))  # one line, never wrapped: scripts grep it
        console.print(benchmark_files_line(dirs))
        return 0
    run_dir = request.run_path(seed)
    with LiveProgress(run_dir, config, console, parallel_candidates=request.parallel_candidates, **show):
        summary = run_flow(server, lambda: train_pipeline(request))
    for table in final_tables(summary):
        console.print(table)
    bundle = run_dir / "bundle" / "bundle.json"
    trust = json.loads(bundle.read_text(encoding="utf-8")).get("trust") if bundle.is_file() else None
    for line in train_done_lines(summary, seed, run_dir, trust):
        console.print(line)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Finished original and optimized runs side by side, and the quality verdict over their seeds."""
    from rltrader.display.tables import comparison_table, comparison_verdict
    from rltrader.training.benchmark import compare_runs
    from rltrader.training.summary import load_summary

    comparison = compare_runs([load_summary(path) for path in args.original],
                              [load_summary(path) for path in args.optimized])
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
        return 0
    _console(160).print(comparison_table(comparison))
    print(comparison_verdict(comparison))  # one line, never wrapped: scripts grep it
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """Score a saved model on one split against the baselines; write the report's files."""
    from rltrader.display.tables import evaluation_text
    from rltrader.env import MarketData
    from rltrader.evaluation.loading import load_model
    from rltrader.evaluation.report import evaluate_model, write_report
    from rltrader.features.preparation import preprocess

    config = resolve_config(args)
    require_bar_file(str(args.data_path), config)
    model = load_model(args.model)
    market = MarketData.from_prepared(preprocess(args.data_path, config), config, args.data_path)
    report = evaluate_model(model, market, args.split, config.env, seed=args.seed, evaluator=args.evaluator)
    out_dir = args.out or Path("results") / "evaluations" / f"{Path(args.model).stem}-{args.split}"
    paths = write_report(report, out_dir)
    print(evaluation_text(report))
    print(f"\n  wrote {paths['metrics']}, {paths['equity'].name}, {paths['plot'].name}")
    return 0


def add_train_commands(commands: Any) -> None:
    """``train``, ``compare`` and ``evaluate`` on ``rltrader``'s subparsers."""
    train = commands.add_parser(
        "train",
        help="train PPO agents iteratively with the optimizations on (resumable)",
        description="Train iteratively on the training split, keep the best model by validation score, "
        "report it against buy-and-hold on the test split. Re-running the same command resumes, and says "
        "from where.",
    )
    add_request_flags(train, after_loading(name for name in TrainRequest.model_fields if name not in FLOW_ONLY),
                      required=("data_path",))
    train.add_argument("--benchmark_mode", action="store_true",
                       help="run the original and the optimized method on the same data and seeds "
                       "(--benchmark_seeds, default 5), then judge quality on test over the seeds")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                       help="0: final table only; 1: progress bars and a line per iteration (default); 2: every log")
    train.set_defaults(handler=train_command)

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
    compare.set_defaults(handler=compare_command)

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
    add_data_options(evaluate)
    evaluate.add_argument("--split", choices=("validation", "test", "train"), default="validation",
                          help="split to evaluate (default: validation; keep test for the final report)")
    evaluate.add_argument("--evaluator", choices=("fast", "reference"), default="fast",
                          help="fast (numpy, default) or reference (model.predict per bar); same results")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the random policies the agent is ranked among (default: 0)")
    evaluate.add_argument("--out", type=Path, default=None,
                          help="output directory (default: results/evaluations/<model>-<split>)")
    add_config_options(evaluate)
    evaluate.set_defaults(handler=evaluate_command)


__all__ = ["add_train_commands", "compare_command", "evaluate_command", "train_command"]
