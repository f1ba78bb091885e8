"""Reference (``model.predict`` per bar) against fast evaluation of one RecurrentPPO model.

Data: the real XAUUSD H1 file shipped in ``data/`` (a copy of ``../shared/data``'s),
split so that the evaluated split holds 50,000 bars. Model: sb3-contrib's default
``MlpLstmPolicy`` (LSTM 256, actor MLP 64-64) trained briefly on the project's
``VecTradingEnv``, so that it trades. Both evaluators run the same model over the same
split in this process, end to end (environment, policy, ledger and metrics), and the
script checks that their actions and metrics are identical. Each evaluator is first run
once, untimed, on the small validation split (first-call costs: loading the fast
evaluator's compiled kernel from numba's cache, torch's set-up for the reference).

Target (issue): fast >= 20x faster, identical metrics.
Usage: .venv/bin/python bench/evaluation.py [--bars 50000] [--train-steps 4096] [--lstm-hidden 256]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
H1 = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
SPLIT = "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=50_000, help="bars in the evaluated split")
    parser.add_argument("--train-steps", type=int, default=4096, help="training steps before evaluating")
    parser.add_argument("--lstm-hidden", type=int, default=256, help="LSTM size (256 is sb3-contrib's default)")
    args = parser.parse_args()

    import torch
    from sb3_contrib import RecurrentPPO

    from rltrader.config import load_config
    from rltrader.env import MarketData, VecTradingEnv
    from rltrader.evaluation.report import evaluate_model
    from rltrader.features.preparation import preprocess

    base = load_config()
    usable = preprocess(H1, base).metadata["parquet"]["rows"]
    share = args.bars / (usable - 2 * base.gap_bars)
    rest = (1.0 - share) / 2
    config = base.with_overrides({"splits.train": share, "splits.validation": rest, "splits.test": 1.0 - share - rest})
    market = MarketData.from_prepared(preprocess(H1, config), config)
    start, stop = market.rows(SPLIT)

    torch.manual_seed(0)
    env = VecTradingEnv(market, SPLIT, config.env, num_envs=8)
    model = RecurrentPPO("MlpLstmPolicy", env, n_steps=256, batch_size=512, n_epochs=4, seed=0, device="cpu",
                         policy_kwargs={"lstm_hidden_size": args.lstm_hidden})
    started = time.perf_counter()
    model.learn(args.train_steps)
    print(f"trained {model.num_timesteps} steps in {time.perf_counter() - started:.1f}s "
          f"(LSTM {model.policy.lstm_actor.hidden_size}, torch threads {torch.get_num_threads()})")

    # One untimed warm-up each on the small validation split: the first call of a process
    # loads the compiled kernel from numba's cache (fast) and sets up torch (reference).
    warm_up = {}
    for evaluator in ("reference", "fast"):
        started = time.perf_counter()
        evaluate_model(model, market, "validation", config.env, seed=0, evaluator=evaluator)
        warm_up[evaluator] = time.perf_counter() - started
    print(f"warm-up on validation ({market.rows('validation')[1] - market.rows('validation')[0]:,} bars): "
          + ", ".join(f"{name} {value:.2f}s" for name, value in warm_up.items()))

    reports, seconds = {}, {}
    for evaluator in ("reference", "fast"):
        started = time.perf_counter()
        reports[evaluator] = evaluate_model(model, market, SPLIT, config.env, seed=0, evaluator=evaluator)
        seconds[evaluator] = time.perf_counter() - started
    reference, fast = reports["reference"], reports["fast"]
    actions_identical = bool(np.array_equal(reference.ledgers["agent"].actions, fast.ledgers["agent"].actions))
    metrics_identical = actions_identical and reference.metrics == fast.metrics
    bars = reference.ledgers["agent"].steps
    agent = fast.metrics["agent"]
    print(f"split '{SPLIT}': rows {start:,}-{stop:,}, {bars:,} decisions, "
          f"{reference.info['start']} .. {reference.info['end']}")
    print(f"agent: return {100 * agent['total_return']:+.2f}%, {agent['trades']} trades, "
          f"exposure {100 * agent['exposure']:.0f}%")
    print(f"{'evaluator':12s} {'seconds':>9s} {'us/bar':>8s}")
    for evaluator in ("reference", "fast"):
        print(f"{evaluator:12s} {seconds[evaluator]:9.2f} {1e6 * seconds[evaluator] / bars:8.1f}")
    print(f"speedup {seconds['reference'] / seconds['fast']:.1f}x; actions identical: {actions_identical}; "
          f"metrics identical: {metrics_identical}")
    print(json.dumps({"bars": bars, "reference_s": round(seconds["reference"], 2), "fast_s": round(seconds["fast"], 2),
                      "speedup": round(seconds["reference"] / seconds["fast"], 1),
                      "metrics_identical": metrics_identical}))


if __name__ == "__main__":
    main()
