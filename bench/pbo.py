"""The probability of backtest overfitting on known answers, and on the studies you ran.

Known answers (CSCV over matrices of per-bar returns, 16 blocks): N configurations of pure noise
(PBO should be about 0.5), the same with one configuration given a planted edge (about 0), and
with a weak edge (in between: the edge is there, but half the bars do not always show it). One
matrix's PBO is itself noisy, since its 12,870 splits share the same bars, so each case is drawn
``--draws`` times and reported with the mean, the 5-95% range and the standard error of the mean.

With ``--study results/tune-NAME`` (any number), also that study's own figures, recomputed from
its trials' validation returns (what ``rltrader tune`` reports in ``overfitting.json``). A study run
before trials kept those returns gets them rebuilt from each trial's best model with ``--rebuild
CONFIG DATA ...`` (the study's config file and its bar files; a PBO per file), each column checked
against the final equity the trial recorded.

Usage: .venv/bin/python bench/pbo.py [--draws 100] [--trials 40] [--bars 4000] [--study DIR ...]
       [--rebuild CONFIG DATA ...]
Last line: one JSON object: per case its mean PBO, its 5-95% range and the draws; each study's PBO; seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rltrader.evaluation.overfitting import (  # noqa: E402
    aligned_on_last_bars,
    blocks_for,
    probability_of_backtest_overfitting,
)
from rltrader.tuning.trial import VALIDATION_RETURNS_FILE  # noqa: E402

SIGMA = 0.001
CASES = {"noise": 0.0, "weak_edge": 0.00004, "planted_edge": 0.0002}
"""The added per-bar mean of configuration 0: per-bar Sharpe 0, 0.04 and 0.2 (noise sd 0.1%)."""


def study_pbo(study: Path, stem: str | None = None) -> dict[str, object]:
    """A study's PBO from its trials' saved validation returns (cut to the bars every trial has); a study of
    several bar files (``--more_data``) is judged on its first file's, in each trial's ``stem`` folder."""
    pattern = f"trials/*/{stem}/{VALIDATION_RETURNS_FILE}" if stem else f"trials/*/{VALIDATION_RETURNS_FILE}"
    columns = [np.load(path) for path in sorted(study.glob(pattern))]
    if len(columns) < 2:
        return {"study": str(study), "trials": len(columns), "pbo": None}
    matrix = aligned_on_last_bars(columns)
    report = probability_of_backtest_overfitting(matrix, blocks_for(matrix.shape[0]))
    return {"study": str(study), **report.to_json()}


def rebuild_returns(study: Path, config_path: Path, data: Path) -> dict[str, int]:
    """Write the per-bar validation returns of every trial that kept a best model but no returns (a study run
    before trials kept them): the trial's settings (the study's config and its parameters from ``trials.json``),
    its best model, the validator every look used. Each rebuilt column is checked against the final equity the
    trial's best model recorded when it was scored: the same bars, the same decisions."""
    from rltrader.config import load_config
    from rltrader.engine.model_files import algorithm_class, saved_algorithm
    from rltrader.env import MarketData
    from rltrader.features.preparation import preprocess
    from rltrader.training.validation import Validator, per_bar_returns

    trials = json.loads((study / "trials.json").read_text(encoding="utf-8"))["trials"]
    base = load_config(config_path)
    counts = {"rebuilt": 0, "kept_before": 0, "no_model": 0, "equity_matches": 0}
    for trial in trials:
        run = study / "trials" / f"{trial['trial']:04d}" / data.stem
        target, best = run / VALIDATION_RETURNS_FILE, run / "best_model.zip"
        if target.is_file():
            counts["kept_before"] += 1
            continue
        if not best.is_file():
            counts["no_model"] += 1
            continue
        params = {key: value for key, value in trial.items() if "." in key and not key.startswith("score")}
        config = base.with_overrides(params, source=f"trial {trial['trial']}")
        market = MarketData.from_prepared(preprocess(data, config), config, data)
        validator = Validator(market, config.env, config.training.selection_metric, "fast")
        model = algorithm_class(saved_algorithm(best)).load(str(best), device="cpu")
        returns = per_bar_returns(validator, model)
        recorded = json.loads((run / "best_model.json").read_text(encoding="utf-8"))["validation_metrics"]
        final = config.env.initial_balance * float(np.prod(1.0 + returns))
        counts["equity_matches"] += int(abs(final / recorded["final_equity"] - 1.0) < 1e-9)
        with target.open("wb") as handle:
            np.save(handle, returns)
        counts["rebuilt"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100, help="matrices drawn per case")
    parser.add_argument("--trials", type=int, default=40, help="configurations (columns) per matrix")
    parser.add_argument("--bars", type=int, default=4000, help="bars (rows) per matrix")
    parser.add_argument("--study", nargs="*", default=[], help="tune study directories to report too")
    parser.add_argument("--rebuild", nargs="+", metavar="CONFIG DATA", default=None,
                        help="first write the missing validation returns of each --study's trials from their best "
                             "models: the study's config file, then its bar files (a study run before trials kept "
                             "their returns); each file's PBO is reported")
    args = parser.parse_args()
    rebuilt = {f"{study} {data.stem}": rebuild_returns(Path(study), Path(args.rebuild[0]), data)
               for study in args.study for data in map(Path, args.rebuild[1:])} if args.rebuild else {}
    for where, counts in rebuilt.items():
        print(f"study {where}: rebuilt the validation returns of {counts['rebuilt']} trials from their best models "
              f"(final equity as recorded in {counts['equity_matches']}), {counts['kept_before']} kept them, "
              f"{counts['no_model']} kept no model", flush=True)
    started = time.perf_counter()
    results: dict[str, object] = {}
    for case, edge in CASES.items():
        values = []
        for draw in range(args.draws):
            returns = np.random.default_rng(draw).normal(0.0, SIGMA, (args.bars, args.trials))
            returns[:, 0] += edge
            values.append(probability_of_backtest_overfitting(returns).pbo)
        mean, error = float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))
        low, high = (float(value) for value in np.quantile(values, [0.05, 0.95]))
        results[case] = {"pbo_mean": round(mean, 4), "standard_error": round(error, 4),
                         "range_5_95": [round(low, 4), round(high, 4)], "draws": args.draws}
        print(f"{case:>13}: PBO mean {mean:.3f} (+/- {1.96 * error:.3f}), 5-95% of draws {low:.3f} .. {high:.3f}, "
              f"{args.draws} matrices of {args.bars:,} bars x {args.trials} configurations", flush=True)
    stems = [Path(data).stem for data in args.rebuild[1:]] if args.rebuild else [None]
    studies = [{**study_pbo(Path(study), stem), "bar_file": stem} for study in args.study for stem in stems]
    for study in studies:
        pbo = study["pbo"]
        print(f"study {study['study']}{'' if study['bar_file'] is None else ' on ' + study['bar_file']}: "
              + (f"PBO {pbo:.3f} over {study['trials']} trials ({study['bars']:,} validation bars), out-of-sample "
                 f"loss in {study['p_oos_loss']:.0%} of splits, slope {study['slope']:.2f}" if pbo is not None
                 else f"{study['trials']} trials with returns: too few"))
    print(json.dumps({**results, "studies": studies, "rebuilt": rebuilt, "trials": args.trials, "bars": args.bars,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
