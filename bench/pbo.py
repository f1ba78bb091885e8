"""The probability of backtest overfitting on known answers, and on the studies you ran.

Known answers (CSCV over matrices of per-bar returns, 16 blocks): N configurations of pure noise
(PBO should be about 0.5), the same with one configuration given a planted edge (about 0), and
with a weak edge (in between: the edge is there, but half the bars do not always show it). One
matrix's PBO is itself noisy, since its 12,870 splits share the same bars, so each case is drawn
``--draws`` times and reported with the mean, the 5-95% range and the standard error of the mean.

With ``--study results/tune-NAME`` (any number), also that study's own figures, recomputed from
its trials' validation returns (what ``rltrader tune`` reports in ``overfitting.json``).

Usage: .venv/bin/python bench/pbo.py [--draws 100] [--trials 40] [--bars 4000] [--study DIR ...]
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


def study_pbo(study: Path) -> dict[str, object]:
    """A study's PBO from its trials' saved validation returns (cut to the bars every trial has)."""
    columns = [np.load(path) for path in sorted(study.glob(f"trials/*/{VALIDATION_RETURNS_FILE}"))]
    if len(columns) < 2:
        return {"study": str(study), "trials": len(columns), "pbo": None}
    matrix = aligned_on_last_bars(columns)
    report = probability_of_backtest_overfitting(matrix, blocks_for(matrix.shape[0]))
    return {"study": str(study), **report.to_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=100, help="matrices drawn per case")
    parser.add_argument("--trials", type=int, default=40, help="configurations (columns) per matrix")
    parser.add_argument("--bars", type=int, default=4000, help="bars (rows) per matrix")
    parser.add_argument("--study", nargs="*", default=[], help="tune study directories to report too")
    args = parser.parse_args()
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
    studies = [study_pbo(Path(study)) for study in args.study]
    for study in studies:
        pbo = study["pbo"]
        print(f"study {study['study']}: " + (f"PBO {pbo:.3f} over {study['trials']} trials" if pbo is not None
                                             else f"{study['trials']} trials with returns: too few"))
    print(json.dumps({**results, "studies": studies, "trials": args.trials, "bars": args.bars,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
