"""``rltrader tune`` and ``rltrader walkforward``: many runs, one line each as they finish, a summary at the end.

Each handler checks its inputs (one line, before any server), runs its Prefect flow with progress lines
(:func:`~rltrader.app.orchestration.run_with_progress_lines`) and prints what :mod:`rltrader.display` formats.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console

from rltrader.app.arguments import STUDY_REMEDY, add_request_flags, after_loading, request_from_args, require_bar_file
from rltrader.app.orchestration import run_with_progress_lines
from rltrader.display.studies import tune_result_lines, walkforward_files_lines, walkforward_table
from rltrader.jobs.requests import TuneRequest, WalkForwardRequest

if TYPE_CHECKING:  # the flows are imported when they run: optuna alone takes a second to import
    from rltrader.records import WalkForwardSummary
    from rltrader.tuning.study import StudyResult


def tune_command(args: argparse.Namespace) -> int:
    """An Optuna study over the config's tune.space, trials in parallel; the best config written."""
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free

    request = request_from_args(args, tuple(TuneRequest.model_fields), TuneRequest)
    config = request.to_config()  # a bad config fails here, before Prefect starts
    require_bar_file(request.data_path, config)
    check_bars(request.data_path, config)
    check_run_directory_free(request.root, STUDY_REMEDY)

    def study(level: int) -> StudyResult:
        from flows.tune import tune_study  # Prefect import: seconds, so only once the inputs are good

        return tune_study(request, trial_console_level=level)

    result = run_with_progress_lines(config, args.verbose, ("Trial ", "Study ", "Resuming"), study)
    print("\n".join(tune_result_lines(result)))
    return 0


def walkforward_command(args: argparse.Namespace) -> int:
    """Train one run per fold and seed, score each on its test window, stitch the tests into one curve."""
    from rltrader.display.cpcv import cpcv_lines
    from rltrader.display.tables import account_text
    from rltrader.display.walkforward import aggregate_lines
    from rltrader.features.preparation import check_bars
    from rltrader.runtime.run_lock import check_run_directory_free
    from rltrader.training.trust import config_file_key
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
                                       prepared[0].metadata["source"]["sha256"], config_file_key(request.config)))

    def walk(level: int) -> WalkForwardSummary:
        from flows.walkforward import walk_forward  # Prefect import: seconds, so only once the inputs are good

        return walk_forward(request, fold_console_level=level)

    result = run_with_progress_lines(config, args.verbose, ("Fold ", "Split ", "Walk-forward ", "Resuming"), walk)
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 180)
    console.print(walkforward_table(result.name, result.fold_table))
    lines = (cpcv_lines(result.aggregate) if result.aggregate.get("scheme") == "cpcv"
             else aggregate_lines(result.aggregate, result.warm_start))
    for line in lines:
        console.print(line)
    console.print(account_text(result))
    console.print(walkforward_files_lines(result.files, result.root))
    return 0


def add_study_commands(commands: Any) -> None:
    """``tune`` and ``walkforward`` on ``rltrader``'s subparsers."""
    tune = commands.add_parser(
        "tune", help="search config keys (tune.space) with Optuna on validation; write the best as a config file",
        description="Optuna study (TPE sampler, median pruner on the validation looks) over tune.space in the "
                    "config; trials train in parallel (a process pool, or Dask with --dask_address), the study is "
                    "kept in SQLite under RESULTS_DIR/tune-NAME/ (or --storage) and resumes after a kill. "
                    "The test split is never used.")
    add_request_flags(tune, tuple(TuneRequest.model_fields), model=TuneRequest)
    tune.add_argument("--verbose", action="store_true", help="every log line, not only one line per trial")
    tune.set_defaults(handler=tune_command)

    walk = commands.add_parser(
        "walkforward", help="walk-forward analysis: retrain on a moving window, test the next period, stitch the tests",
        description="Split the file into folds (walk_forward: in the config; rolling or anchored windows, each with "
                    "its own train / validation / test and normalization), train one run per fold and seed with every "
                    "optimization (in parallel with --parallel in performance mode, or on Dask), score each fold's "
                    "best model once on its test window, and stitch the test windows into one out-of-sample equity "
                    "curve against buy-and-hold. Results go to RESULTS_DIR/walkforward-NAME/; re-running resumes.")
    add_request_flags(walk, after_loading(WalkForwardRequest.model_fields), model=WalkForwardRequest)
    walk.add_argument("--verbose", action="store_true", help="every log line, not only one line per fold")
    walk.set_defaults(handler=walkforward_command)


__all__ = ["add_study_commands", "tune_command", "walkforward_command"]
