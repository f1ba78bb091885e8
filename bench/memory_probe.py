"""Why the memory kinds are hard to learn: an LSTM fitted to the next bar's return, without RL.

Reinforcement learning adds its own noise (exploration, advantages, a moving policy) to the
market's. To tell "the network cannot hold the memory" from "the data hides the edge", this
fits the policy's own building block, an ``nn.LSTM`` of the default size over the same
normalized features the agent observes (``MarketData.features``, statistics fitted on the
training rows), by supervised regression on the training split of a memory market, and scores
it on the test split: the correlation of its prediction with the realized next log return,
as a fraction of the oracle's (the planted expected return's) correlation with it.

Three targets per market and file length:

- ``realized``: the next bar's log return, what any learner has (the planted drift plus noise);
- ``planted``: the planted expected return itself (no noise): can the network represent it?

and two file lengths: the suite's 20,000 bars and 60,000 bars (three times the training
rows). Scored every 250 updates (Adam, 32 sequences of 64 bars, the first 8 bars of each
sequence left out of the loss while the state warms up), so the curve shows both how soon
it learns and whether it then fits noise.

With ``--move_patterns 4`` the inputs are today's default features (the last 4 moves' patterns among them,
issue 47): does that observation make the sequence edge learnable from the realized return, without RL?

Usage: .venv/bin/python bench/memory_probe.py [--markets bar_sequence delayed_volume] [--updates 1500]
       [--bars 20000 60000] [--move_patterns 0]
Last line: one JSON object: per market, file length and target, the best test fraction and the last.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rltrader.config import load_config  # noqa: E402
from rltrader.data.known_answer import MEMORY_KINDS  # noqa: E402
from rltrader.data.synthetic import expected_next_return, suite_market, write_market  # noqa: E402
from rltrader.env import MarketData  # noqa: E402
from rltrader.features.preparation import preprocess  # noqa: E402

OUT = ROOT / "bench" / "out" / "memory_probe"


SCORE_EVERY = 250  # updates between two scorings of the probe on the test rows


def probe(features: np.ndarray, target: np.ndarray, realized: np.ndarray, train: tuple[int, int],
          test: tuple[int, int], hidden: int, updates: int, seed: int = 0) -> list[float]:
    """Test correlations (with ``realized``) of an LSTM regression on ``target``, every ``SCORE_EVERY`` updates."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lstm, head = torch.nn.LSTM(features.shape[1], hidden, batch_first=True), torch.nn.Linear(hidden, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-3)
    inputs, goal = torch.from_numpy(features), torch.from_numpy(target)
    sequence, warm, scores = 64, 8, []
    for update in range(1, updates + 1):
        starts = rng.integers(train[0], train[1] - sequence - 1, 32)
        rows = torch.from_numpy(starts[:, None] + np.arange(sequence))
        predicted = head(lstm(inputs[rows])[0]).squeeze(-1)
        loss = ((predicted - goal[rows])[:, warm:] ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if update % SCORE_EVERY == 0:
            with torch.no_grad():  # the test split run from 200 bars before it, so the state is warm
                span = inputs[None, test[0] - 200:test[1] - 1]
                predicted = head(lstm(span)[0]).squeeze(-1)[0, 200:].numpy()
            scores.append(float(np.corrcoef(predicted, realized[test[0]:test[1] - 1])[0, 1]))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", nargs="+", default=list(MEMORY_KINDS), choices=MEMORY_KINDS)
    parser.add_argument("--bars", type=int, nargs="+", default=[20_000, 60_000])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--move_patterns", type=int, default=0,
                        help="features.move_patterns of the inputs: 0 (default) = the bar's own features, as the "
                             "first measurement; 4 = today's default features, the last 4 moves' patterns added")
    args = parser.parse_args()
    if args.updates < SCORE_EVERY:
        parser.error(f"--updates {args.updates}: the probe is scored every {SCORE_EVERY} updates; use at least that")
    torch.set_num_threads(1)
    shutil.rmtree(OUT, ignore_errors=True)
    config = load_config().with_overrides({"cache.dir": str(OUT / "cache")}, source="bench")
    config = config.model_copy(update={"features": config.features.model_copy(
        update={"move_patterns": args.move_patterns})})
    hidden = config.training.policy.lstm_hidden_size
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for kind in args.markets:
        for bars in args.bars:
            path = OUT / "data" / f"{kind}_{bars}.csv"
            market = write_market(suite_market(kind, bars=bars), path)
            data = MarketData.from_prepared(preprocess(path, config), config, path)
            features = np.asarray(data.features, dtype=np.float32)
            realized = np.zeros(len(data.close), np.float32)
            realized[:-1] = np.diff(np.log(data.close)) / market.sigma
            planted = np.nan_to_num(expected_next_return(market, data.timestamps, data.close)).astype(np.float32)
            planted /= market.sigma
            train, test = data.rows("train"), data.rows("test")
            oracle = float(np.corrcoef(planted[test[0]:test[1] - 1], realized[test[0]:test[1] - 1])[0, 1])
            for name, target in (("realized", realized), ("planted", planted)):
                scores = probe(features, target, realized, train, test, hidden, args.updates)
                fractions = [round(score / oracle, 3) for score in scores]
                results.setdefault(kind, {}).setdefault(str(bars), {})[name] = {
                    "best": max(fractions), "last": fractions[-1]}
                print(f"{kind:>15} {bars:>6,} bars, target {name:>8}: oracle's test correlation {oracle:.3f}; "
                      f"LSTM {hidden} every {SCORE_EVERY} updates, fraction of it: {fractions}", flush=True)
    print(json.dumps({"lstm_hidden_size": hidden, "updates": args.updates, "move_patterns": args.move_patterns,
                      "fraction_of_oracle": results}))


if __name__ == "__main__":
    main()
