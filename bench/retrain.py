"""Does champion/challenger retraining pay? A weekly replay: never retrain, always swap, or promote on evidence.

Bars are appended to a file one week at a time, as a terminal export grows, over the last WEEKS weeks
of a market. Before the first week a model is trained on the bars so far (``rltrader retrain``'s first
version). Then, every week (every EVERY weeks with ``--every``):

1. the week's bars are appended and the paper account following the model's champion trades them
   (``rltrader paper --model``'s account: decided at each close, filled at the next open);
2. ``rltrader retrain`` runs on the grown file (quick profile, the config's ``retrain:`` windows): a
   challenger is trained on the latest window and promoted only if the paired test on the held-out
   window says it is better (P >= 0.9) without a deeper drawdown; the paper account switches to a
   new champion at the next bar, carrying its position.

Two more policies trade the same bars with the same costs, switching the same way (the take-over
the paper account uses): **never** keeps the first model, **always** swaps in every week's
challenger unconditionally (FreqAI's way). Challengers start cold (``retrain.start``), so one set
of challengers serves both "always" and "champion/challenger": they are trained first, side by side
(``--parallel``), then the weeks are replayed in order and the registry decides.

Each policy's stitched paper equity gets a Sharpe with its 95% interval (Lo/Newey-West), against
buy-and-hold with the same costs. The gated paper account's ledger is checked against the gated
take-over replay bar by bar (the same equity: the account followed the champion as replayed).

Markets: the shipped 10-year gold H1 file (the last WEEKS weeks), and a known-answer
``regime_change`` market whose time-of-day blocks swap signs partway through the replay, where the
edge captured (the gated account's return over the oracle's, same costs) says whether retraining
recovered the new edge.

The last line is one JSON object with the keys ``weeks``, ``never_sharpe``, ``always_sharpe``,
``gated_sharpe``, ``gated_sharpe_ci``, ``buy_and_hold_sharpe``, ``promotions``,
``regime_edge_captured`` and ``seconds`` (and more figures of both markets).

Plots: ``bench/figures/retrain_gold.png`` and ``retrain_regime.png`` (the README's) from the full-length replay;
a shorter one writes them to ``bench/out/`` (or ``--figures DIR``).

Usage: .venv/bin/python bench/retrain.py [--weeks 104] [--every 1] [--parallel 2] [--regime-weeks 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOLD = ROOT / "data" / "XAUUSD_H1_2016_2026.csv"
WEEK = pd.Timedelta(days=7)


def _request(name: str, data: Path, work: Path, sizes: dict[str, Any], seed: int, start: str = "cold") -> Any:
    from rltrader.jobs.requests import RetrainRequest

    # the fixed windows this replay compares (its challengers are trained ahead, independent of the registry);
    # the retrain after a break alarm is bench/retrain_break.py's
    return RetrainRequest(name=name, data_path=str(data), registry_dir=str(work / "registry"),
                          cache_dir=str(work / "cache"), settings_file=str(work / "settings.json"), seed=seed,
                          start=start, after_break=False, **sizes)


def _train_week(args: tuple[str, str, str, dict[str, int], int]) -> tuple[str, float]:
    """A pool worker: train (or read back) the cold challenger of one week's file."""
    import torch

    torch.set_num_threads(1)
    from rltrader.retraining.retrain import RetrainOutcome, plan_retrain, train_challenger

    name, data, work, sizes, seed = args
    started = time.perf_counter()
    plan = plan_retrain(_request(name, Path(data), Path(work), sizes, seed).to_spec())
    if isinstance(plan, RetrainOutcome):
        raise RuntimeError(f"{data}: {plan.reason}")
    return train_challenger(plan), time.perf_counter() - started


class Replay:
    """One market's weekly replay (see the module docstring)."""

    def __init__(self, name: str, source: Path, weeks: int, every: int, sizes: dict[str, Any], work: Path,
                 parallel: int, seed: int, start: str = "cold") -> None:
        self.name, self.source, self.weeks, self.every, self.sizes = name, source, weeks, every, sizes
        self.work, self.parallel, self.seed, self.start = work / name, parallel, seed, start
        self.work.mkdir(parents=True, exist_ok=True)
        # quiet mode: the configured batch and epochs; the side-by-side challengers share the cores
        (self.work / "settings.json").write_text('{"performance_mode": "quiet"}', encoding="utf-8")
        self.raw = pd.read_csv(source)
        times = self._bar_times()
        first_cut = times[-1] - weeks * WEEK.value
        # rows in the file after week k is appended: every bar up to first_cut + k weeks (the last: all)
        self.cuts = [int(np.searchsorted(times, first_cut + k * WEEK.value, side="right"))
                     for k in range(weeks)] + [len(self.raw)]
        self.replay_path = self.work / f"{source.stem}.csv"

    def _time_column(self) -> pd.Series:
        return self.raw.iloc[:, 0]

    def write_prefix(self, rows: int, path: Path) -> Path:
        tmp = path.with_name(path.name + ".tmp")
        self.raw.iloc[:rows].to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ phase A: every challenger, in parallel
    def retrain_weeks(self) -> list[int]:
        return [0, *[k for k in range(1, self.weeks) if k % self.every == 0]]

    def train_challengers(self) -> dict[str, float]:
        weeks_dir = self.work / "weeks"
        weeks_dir.mkdir(exist_ok=True)
        jobs = []
        for k in self.retrain_weeks():
            path = self.write_prefix(self.cuts[k], weeks_dir / f"week_{k:03d}.csv")
            jobs.append((self.name, str(path), str(self.work), self.sizes, self.seed))
        started = time.perf_counter()
        seconds = []
        with ProcessPoolExecutor(self.parallel, mp_context=get_context("spawn")) as pool:
            for done, (_, took) in enumerate(pool.map(_train_week, jobs), start=1):
                seconds.append(took)
                if done % 10 == 0 or done == len(jobs):
                    print(f"  {self.name}: {done}/{len(jobs)} challengers trained "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
        shutil.rmtree(weeks_dir)
        return {"challengers": len(jobs), "train_seconds": time.perf_counter() - started,
                "median_challenger_seconds": float(np.median(seconds))}

    # ------------------------------------------------------------------ phase B: the weeks in order
    def replay(self) -> dict[str, Any]:
        from rltrader.live.paper import holding, open_paper_account
        from rltrader.registry.store import open_registry
        from rltrader.retraining.retrain import retrain

        request = _request(self.name, self.replay_path, self.work, self.sizes, self.seed, self.start)
        self.write_prefix(self.cuts[0], self.replay_path)
        first = retrain(request.to_spec())
        assert first.kind == "promote" and first.version == 1, first
        registry = open_registry(request.registry_root, self.name)
        start_time = str(pd.Timestamp(int(self._bar_times()[self.cuts[0]]), unit="ns"))
        account = open_paper_account(None, self.replay_path, "gated", self.work / "paper", start_time,
                                     model=self.name, registry_dir=request.registry_root,
                                     stand_aside=False)  # the gated replay it is checked against trades through
        with holding(account):
            account.process(account.new_bars())
        weekly: list[dict[str, Any]] = []  # per week: the version deciding after it, in each policy
        for k in range(1, self.weeks + 1):
            self.write_prefix(self.cuts[k], self.replay_path)
            account = open_paper_account(None, self.replay_path, "gated", self.work / "paper", model=self.name,
                                         registry_dir=request.registry_root)
            with holding(account):
                account.follow_champion()
                account.process(account.new_bars())
            entry = {"week": k, "rows": self.cuts[k]}
            if k % self.every == 0 and k < self.weeks:
                outcome = retrain(request.to_spec())
                entry.update(kind=outcome.kind, version=outcome.version, champion=outcome.champion)
                if outcome.comparison is not None:
                    entry["probability"] = outcome.comparison.probability_better
                    entry["challenger_return"] = outcome.figures["challenger"]["total_return"]
                    entry["champion_return"] = outcome.figures["champion"]["total_return"]
            weekly.append(entry)
            if k % 10 == 0:
                promoted = sum(1 for week in weekly if week.get("kind") == "promote")
                print(f"  {self.name}: week {k}/{self.weeks}, champion v{registry.read().champion}, "
                      f"{promoted} promotion(s) so far", flush=True)
        registry = open_registry(request.registry_root, self.name)
        return {"weekly": weekly, "registry": registry, "ledger": account.ledger_frame()}

    def _bar_times(self) -> np.ndarray:
        """Open times (ns) of the source's rows: Unix seconds (rltrader synth) or MT5's ``2016.03.21 01:00:00``."""
        column = self._time_column()
        if pd.api.types.is_numeric_dtype(column):
            return column.to_numpy(dtype=np.int64) * 1_000_000_000
        return pd.to_datetime(column, format="%Y.%m.%d %H:%M:%S").to_numpy().astype("datetime64[ns]").astype(np.int64)


def follow(bars: Any, first_row: int, switches: list[tuple[int, Any, str | None]], first_bundle: Any) -> np.ndarray:
    """Equity at each bar from ``first_row`` of a stream that switches models after given rows (take-over)."""
    from rltrader.live.stream import DecisionStream
    from rltrader.live.takeover import take_over

    warmup = first_bundle.description.warmup_bars
    stream = DecisionStream(first_bundle, int(bars.timestamps[first_row]))
    stream.advance(bars.rows(first_row - warmup, first_row))
    equity, row = [], first_row
    for after_row, bundle, scored_from in [*switches, (len(bars) - 1, None, None)]:
        batch = stream.advance(bars.rows(row, after_row + 1))
        equity.extend(batch.equity.tolist())
        row = after_row + 1
        if bundle is not None:
            stream = take_over(stream, bundle, bars, scored_from)
    return np.asarray(equity)


def sharpe_text(entry: dict[str, Any], width: int = 0) -> str:
    """``Sharpe [low, high]``, or why there is none: an account that never moved (flat throughout) has no spread."""
    if entry["sharpe"] is None:
        return "n/a (no spread: the account never moved)"
    low, high = entry["sharpe_ci"]
    interval = f"[{low:{width}.2f}, {high:{width}.2f}]" if low is not None else "[no interval]"
    return f"{entry['sharpe']:{width}.2f} {interval}"


def figures(equity: np.ndarray, bars_per_year: float) -> dict[str, Any]:
    """The registry's own figures of an equity curve, the interval under the bench's key ``sharpe_ci``."""
    from rltrader.retraining.scoring import equity_figures

    entry = equity_figures(equity, bars_per_year)
    return {**entry, "sharpe_ci": entry.pop("sharpe_interval") or [None, None]}


def policies(replay: Replay, result: dict[str, Any]) -> dict[str, Any]:
    """Never, always and gated over the same bars (take-over replays), buy-and-hold from the paper ledger."""
    from rltrader.live.bars import read_bar_file
    from rltrader.registry.paired_test import mean_difference_test

    registry = result["registry"]
    first_bundle = registry.bundle(1)
    bars = read_bar_file(replay.replay_path, first_bundle.description).bars
    first_row = replay.cuts[0]
    always, gated = [], []
    champion = 1
    for week in result["weekly"]:
        version = week.get("version")
        if version is None:
            continue
        after = week["rows"] - 1  # the week's last bar: the new model decides from the next one
        scored_from = registry.version(version).windows["holdout"].start
        always.append((after, registry.bundle(version), scored_from))
        if week["champion"] != champion:
            champion = week["champion"]
            gated.append((after, registry.bundle(champion), registry.version(champion).windows["holdout"].start))
    curves = {"never": follow(bars, first_row, [], first_bundle),
              "always": follow(bars, first_row, always, first_bundle),
              "gated": follow(bars, first_row, gated, first_bundle)}
    ledger = result["ledger"]
    initial = float(curves["gated"][0])
    paper = ledger["equity"].to_numpy(dtype=float)
    hold = ledger["buy_and_hold"].to_numpy(dtype=float)
    assert len(paper) == len(curves["gated"]) and paper[0] == initial, (len(paper), len(curves["gated"]))
    summary = registry.bundle(1).description.training_data
    years = (pd.Timestamp(summary.end) - pd.Timestamp(summary.start)).total_seconds() / (365.25 * 86400)
    bars_per_year = (summary.bars - 1) / years
    out = {name: figures(curve, bars_per_year) for name, curve in curves.items()}
    out["buy_and_hold"] = figures(hold, bars_per_year)
    out["paper_vs_replay_max_abs_equity_diff"] = float(np.abs(paper - curves["gated"]).max())
    out["bars"] = len(curves["gated"]) - 1
    out["bars_per_year"] = bars_per_year
    for other in ("never", "always"):
        returns = {name: curve[1:] / curve[:-1] - 1 for name, curve in curves.items()}
        _, _, _, probability = mean_difference_test(returns["gated"] - returns[other])
        out[f"p_gated_beats_{other}"] = probability
    out["promotions"] = sum(1 for week in result["weekly"] if week.get("kind") == "promote")
    out["retrains"] = sum(1 for week in result["weekly"] if "kind" in week)
    out["curves"] = {name: curve for name, curve in curves.items()} | {"buy_and_hold": hold}
    out["first_bar"] = str(pd.Timestamp(int(bars.timestamps[first_row]), unit="ns"))
    return out


def oracle_equity(data: Path, first_bar: str) -> np.ndarray:
    """The planted edge's equity over the replay: the oracle's actions through the backtest ledger, same costs."""
    from rltrader.config import load_config
    from rltrader.data.synthetic import oracle_actions
    from rltrader.env import MarketData
    from rltrader.evaluation.ledger import replay
    from rltrader.features.preparation import preprocess

    config = load_config().with_overrides({"cache.dir": str(data.parent / "cache")})
    market = MarketData.from_prepared(preprocess(data, config), config, data)
    first = int(np.searchsorted(market.timestamps, np.datetime64(pd.Timestamp(first_bar))))
    steps = len(market.timestamps) - 1 - first
    actions = oracle_actions(market.known_answer, market.timestamps, market.close, market.trade_cost, first, steps)
    return replay(market, first, actions, config.env.initial_balance).equity


def plot(out: Path, title: str, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4.5))
    styles = {"gated": ("champion/challenger", "tab:blue", 1.6), "always": ("always swap", "tab:orange", 1.0),
              "never": ("never retrain", "tab:green", 1.0), "buy_and_hold": ("buy and hold", "tab:gray", 1.0)}
    for name, (label, color, width) in styles.items():
        curve = result["curves"][name]
        entry = result[name]
        axis.plot(curve, label=f"{label}: {100 * entry['total_return']:+.1f}%, Sharpe {sharpe_text(entry)}",
                  color=color, linewidth=width)
    axis.set_title(title)
    axis.set_xlabel(f"bars since {result['first_bar']}")
    axis.set_ylabel("paper equity")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def run_market(name: str, source: Path, weeks: int, every: int, sizes: dict[str, Any], work: Path, parallel: int,
               seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    replay = Replay(name, source, weeks, every, sizes, work, parallel, seed)
    print(f"{name}: {weeks} weeks from row {replay.cuts[0]:,} of {len(replay.raw):,}; retrain every {every} week(s), "
          f"windows {sizes}", flush=True)
    trained = replay.train_challengers()
    result = replay.replay()
    out = policies(replay, result)
    out.update(trained, seconds=time.perf_counter() - started, weeks=weeks, every=every)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=104, help="weeks of gold H1 replayed (default 104: two years)")
    parser.add_argument("--every", type=int, default=1, help="retrain every N weeks (default 1)")
    parser.add_argument("--regime-weeks", type=int, default=40, help="weeks of the regime-change market replayed")
    parser.add_argument("--parallel", type=int, default=2, help="challengers trained at once")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default=None, help="the challengers' training budget (default: retrain.profile)")
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="where the plots go (default: bench/figures/, the README's, for the full replay of the "
                             "default --weeks, --regime-weeks and --every; bench/out/ for any shorter one, so a quick "
                             "check never overwrites the committed plots)")
    args = parser.parse_args()
    if args.figures is None:
        full = (args.weeks, args.regime_weeks, args.every) == tuple(
            parser.get_default(name) for name in ("weeks", "regime_weeks", "every"))
        args.figures = ROOT / "bench" / ("figures" if full else "out")
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="rltrader-retrain-"))
    args.figures.mkdir(parents=True, exist_ok=True)

    from rltrader.config import load_config
    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import change_time, write_market

    defaults = load_config().retrain
    budget = {"profile": args.profile} if args.profile else {}  # the windows and budget of every retrain
    gold_sizes = {"train_bars": defaults.train_bars, "validation_bars": defaults.validation_bars,
                  "holdout_bars": defaults.holdout_bars, **budget}
    gold = run_market("gold", GOLD, args.weeks, args.every, gold_sizes, work, args.parallel, args.seed)
    plot(args.figures / "retrain_gold.png", f"Gold H1, last {args.weeks} weeks: paper equity of three retraining "
                                            "policies (same costs)", gold)

    # regime change: 120 H1 bars a week; the change falls 30% into the replay
    regime_sizes = {"train_bars": 1500, "validation_bars": 480, "holdout_bars": 240, **budget}
    before = 420 + 1500 + 480 + 240 + 50 + 120  # warm-up, windows, gaps and a week before the replay starts
    bars = before + args.regime_weeks * 120 + 60
    change_at = (before + 0.3 * args.regime_weeks * 120) / bars
    market = KnownAnswerMarket(kind="regime_change", bars=bars, seed=7, bar_minutes=60, change_at=round(change_at, 4),
                               start="2024-01-01 00:00")
    regime_file = work / "sources" / "regime_change.csv"
    regime_file.parent.mkdir(parents=True, exist_ok=True)
    write_market(market, regime_file)
    regime = run_market("regime", regime_file, args.regime_weeks, 1, regime_sizes, work, args.parallel, args.seed)
    oracle_curve = oracle_equity(regime_file, regime["first_bar"])
    oracle = float(oracle_curve[-1] / oracle_curve[0] - 1)
    regime["oracle"] = figures(oracle_curve, regime["bars_per_year"])
    for name in ("never", "always", "gated"):
        regime[name]["edge_captured"] = regime[name]["total_return"] / oracle if oracle > 0 else None
        regime[name]["sharpe_share"] = None if regime[name]["sharpe"] is None \
            else regime[name]["sharpe"] / regime["oracle"]["sharpe"]
    regime["oracle_return"], regime["change_time"] = oracle, str(change_time(market))
    plot(args.figures / "retrain_regime.png", f"Regime change at {change_time(market)}: paper equity of three "
                                              "retraining policies (same costs)", regime)

    for label, result in (("gold H1", gold), ("regime change", regime)):
        print(f"\n{label}: {result['weeks']} weeks, {result['bars']:,} bars from {result['first_bar']}; "
              f"{result['retrains']} retrains, {result['promotions']} promotions; challengers trained in "
              f"{result['train_seconds']:.0f} s (median {result['median_challenger_seconds']:.1f} s each)")
        for name in ("never", "always", "gated", "buy_and_hold"):
            entry = result[name]
            edge = (f", edge captured {entry['edge_captured']:.2f} (Sharpe {entry['sharpe_share']:.2f} of the "
                    "oracle's)" if entry.get("edge_captured") is not None and entry.get("sharpe_share") is not None
                    else "")
            print(f"  {name:<13} return {100 * entry['total_return']:+7.2f}%  Sharpe {sharpe_text(entry, 6)}  "
                  f"max drawdown {100 * entry['max_drawdown']:5.2f}%{edge}")
        print(f"  P(gated's mean return > never's) {result['p_gated_beats_never']:.3f}, > always's "
              f"{result['p_gated_beats_always']:.3f}; paper account vs replay: max equity difference "
              f"{result['paper_vs_replay_max_abs_equity_diff']:.3g}")
    print(f"  oracle over the replay: {100 * regime['oracle_return']:+.2f}%, Sharpe {regime['oracle']['sharpe']:.2f} "
          f"(regime changes at {regime['change_time']})")
    summary = {
        "weeks": gold["weeks"], "never_sharpe": gold["never"]["sharpe"], "always_sharpe": gold["always"]["sharpe"],
        "gated_sharpe": gold["gated"]["sharpe"], "gated_sharpe_ci": gold["gated"]["sharpe_ci"],
        "buy_and_hold_sharpe": gold["buy_and_hold"]["sharpe"], "promotions": gold["promotions"],
        "regime_edge_captured": regime["gated"]["edge_captured"], "seconds": round(time.perf_counter() - started, 1),
        "retrains": gold["retrains"], "every": gold["every"],
        "regime": {name: regime[name] for name in ("never", "always", "gated", "buy_and_hold")}
        | {"promotions": regime["promotions"], "weeks": regime["weeks"], "oracle_return": oracle,
           "oracle_sharpe": regime["oracle"]["sharpe"]},
        "paper_vs_replay_max_abs_equity_diff": max(gold["paper_vs_replay_max_abs_equity_diff"],
                                                   regime["paper_vs_replay_max_abs_equity_diff"]),
    }
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
