"""After a regime break: today's retrain against the retrain on the bars since the break, replayed bar block by block.

A known-answer M15 market (``rltrader synth KIND --breaks``; time of day by default, ``--kind momentum`` or
``volume``) whose planted edge flips sign at ``--break_at``. A first model is trained with ``rltrader retrain`` on
the bars before ``--start``; then the file grows by ``--step`` bars at a time. At each step the paper account
following the model's champion (``rltrader paper --model``'s account, with its break test) trades the new bars, then
``rltrader retrain`` runs on the grown file, with retrain's own windows (``--sizes defaults``: train 6,000, validation
1,200, held-out 600 bars, as a user's retrain runs; ``--sizes month`` is the shorter replay of earlier stops). One
registry per scheme replays the same bars with the same seeds and costs:

- **today**: ``--no-after_break``: the challenger trains on the last ``train_bars`` (a mix of both regimes for a
  while after the break);
- **after break**: ``retrain.after_break``: after the paper account's alarm, challengers train on the bars since the
  break (``retrain.break_*`` sizes) until the usual windows fit after it; the account trades the champion through
  (``--no-stand_aside``);
- **stand aside**: the defaults: the same retrain, and the paper account stands aside (flat) from the bar after an
  alarm that finds the champion losing until the evidence is in (a new champion, or the champion kept where it
  earned after the break);
- **stand aside, warm** (asked for by name): the same, challengers warm-started from the champion (``warm_reset``).

Per scheme and seed: ``bars_to_alarm`` (break to the paper account's first alarm), ``bars_to_promotion`` (break to
the first promotion after it), ``post_break_edge_captured`` (the account's Sharpe over every bar after the break
over the oracle's on the same bars, the oracle knowing the break; also over the first 2,000 and 5,000 bars),
``bars_stood_aside``; on the same kind of market without a break (``--without_break``), each scheme's alarms per
10,000 bars (``false_alarms_per_10k_bars``, the defaults' scheme at the top level; with the champion versions they
rang on and the crossings the dated fall did not bear out, which are not alarms: ``rltrader/live/paper.py``), bars
stood aside and share of the oracle's Sharpe. The sequential replay is what a user's nightly retrain does; it trains
one challenger per step per scheme, so it is slow (about 4 minutes per scheme and seed on one core, and as many for
the replay without a break).

``--data FILE``: a real bar file instead (the shipped gold H1 file: one week of H1 bars is about 120): the replay of
its last ``--weeks`` steps with the default windows, each scheme's Sharpe with its interval, return, alarms,
promotions and bars stood aside against buy-and-hold on the same bars.

Usage: .venv/bin/python bench/retrain_break.py [--kind time_of_day] [--seeds 1 2 3] [--bars 23000] [--start 9000]
       [--break_at 11000] [--step 500] [--schemes today "after break" "stand aside"]
       [--without_break today "stand aside"] [--sizes defaults|month] [--keep DIR] [--profile NAME]
       .venv/bin/python bench/retrain_break.py --data data/XAUUSD_H1_2016_2026.csv --weeks 104 --step 120 --seeds 1
Last line: one JSON object with, per scheme, bars_to_alarm, bars_to_promotion, post_break_edge_captured (per seed and
their mean, and the means over the first bars), bars_stood_aside, and seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SIZES = {"month": {"train_bars": 3000, "validation_bars": 600, "holdout_bars": 400},  # M15: a month, a week, 4 days
         "defaults": {}}  # retrain's own windows (configs/default.yaml's retrain:, 6,000 / 1,200 / 600 bars)
SCHEMES = {  # retrain.after_break, paper --stand_aside, retrain.start
    "today": {"after_break": False, "stand_aside": False, "start": "cold"},
    "after break": {"after_break": True, "stand_aside": False, "start": "cold"},
    "stand aside": {"after_break": True, "stand_aside": True, "start": "cold"},
    "stand aside, warm": {"after_break": True, "stand_aside": True, "start": "warm_reset"}}
HORIZONS = (2_000, 5_000)  # the share captured over the first bars after the break too


def default_scheme() -> str:
    """The scheme the product's defaults run (``retrain.after_break``, a new paper account's stand-aside setting):
    the one replayed on the markets without a break."""
    from rltrader.config import load_config
    from rltrader.live.stand_aside import STAND_ASIDE_DEFAULT

    wanted = {"after_break": load_config().retrain.after_break, "stand_aside": STAND_ASIDE_DEFAULT,
              "start": load_config().retrain.start}
    return next(name for name, settings in SCHEMES.items() if settings == wanted)


def oracle_returns(market: Any, path: Path, first_time: pd.Timestamp, work: Path) -> np.ndarray:
    """The oracle's per-bar returns over the bars from ``first_time`` on (it knows the break), with the account's
    costs and sizing."""
    from rltrader.config import load_config
    from rltrader.data.synthetic import oracle_actions
    from rltrader.env import MarketData
    from rltrader.evaluation.ledger import replay
    from rltrader.features.preparation import preprocess

    config = load_config().with_overrides({"cache.dir": str(work / "oracle-cache")})
    data = MarketData.from_prepared(preprocess(path, config), config, path)
    first = int(np.searchsorted(data.timestamps, np.datetime64(first_time))) - 1
    steps = len(data.close) - 1 - first
    equity = replay(data, first, oracle_actions(market, data.timestamps, data.close, data.trade_cost, first, steps),
                    10_000.0).equity
    return equity[1:] / equity[:-1] - 1.0


def sharpe(returns: np.ndarray) -> float:
    """Per-bar Sharpe (the horizons compare shares of the oracle's, so no annualizing)."""
    return float(np.mean(returns) / np.std(returns)) if np.std(returns) > 0 else 0.0


def replay_scheme(scheme: str, after_break: bool, stand_aside: bool, start: str, source: pd.DataFrame,
                  times: pd.DatetimeIndex, args: argparse.Namespace, seed: int, work: Path,
                  sizes: dict[str, int]) -> tuple[Any, Any]:
    """One registry's replay: the first model on the bars before ``args.start``, then at every step the paper
    account trades the new bars and the retrain runs; returns the account and the registry.

    :param source: the bar file's rows, written out growing
    :param times: each row's bar open time
    """
    from rltrader.jobs.requests import RetrainRequest
    from rltrader.live.paper import holding, open_paper_account
    from rltrader.registry.store import open_registry
    from rltrader.retraining.retrain import retrain

    root = work / scheme.replace(" ", "_").replace(",", "")
    root.mkdir(parents=True)
    (root / "settings.json").write_text('{"performance_mode": "quiet"}', encoding="utf-8")
    data = root / "bars.csv"

    def grow(rows: int) -> None:
        source.iloc[:rows].to_csv(data.with_suffix(".tmp"), index=False)
        os.replace(data.with_suffix(".tmp"), data)

    request = RetrainRequest(name="m", data_path=str(data), registry_dir=str(root / "registry"),
                             cache_dir=str(root / "cache"), settings_file=str(root / "settings.json"), seed=seed,
                             after_break=after_break, start=start, profile=args.profile, **sizes)
    grow(args.start)
    assert retrain(request.to_spec()).kind == "promote"
    first_time = times[args.start]
    for rows in range(args.start + args.step, args.bars + 1, args.step):
        grow(rows)
        account = open_paper_account(None, data, "live", root / "paper", str(first_time) if rows == args.start +
                                     args.step else None, model="m", registry_dir=root / "registry",
                                     stand_aside=stand_aside)
        with holding(account):
            account.follow_champion()
            account.process(account.new_bars())
        outcome = retrain(request.to_spec())
        print(f"  seed {seed} {scheme:<17} bars {rows:,}: {outcome.kind}"
              f"{'' if outcome.version is None else f' v{outcome.version}'}; champion v{outcome.champion}; "
              f"{len(account.alarms)} alarms so far{'; standing aside' if account.standing_aside else ''}", flush=True)
    return account, open_registry(root / "registry", "m")


def ledger_returns(account: Any) -> np.ndarray:
    """The account's per-bar returns (the first over its opening balance)."""
    equity = np.concatenate(([float(account.stream.env.initial_balance)],
                             account.ledger_frame()["equity"].to_numpy(dtype=float)))
    return equity[1:] / equity[:-1] - 1.0


def break_figures(account: Any, registry: Any, market: Any, path: Path, source: pd.DataFrame, work: Path,
                  break_time: pd.Timestamp) -> dict[str, Any]:
    """A replay's figures around its known break, against the oracle that knows it."""
    ledger = account.ledger_frame()
    returns = ledger_returns(account)
    after = (pd.to_datetime(ledger["time"]) >= break_time).to_numpy()
    oracle = oracle_returns(market, path, break_time, work)
    assert len(oracle) == int(after.sum()), "the oracle and the account trade the same bars after the break"
    bar_of = {stamp: index for index, stamp in enumerate(pd.to_datetime(source["time"], unit="s"))}
    break_bar = bar_of[break_time]
    alarms = [bar_of[pd.Timestamp(alarm["time"])] - break_bar for alarm in account.alarms
              if pd.Timestamp(alarm["time"]) >= break_time]
    promotions = [pd.Timestamp(version.windows["holdout"].end) for version in registry.file.versions
                  if version.decision.get("kind") == "promote" and pd.Timestamp(version.windows["holdout"].end)
                  >= break_time]
    return {"bars_to_alarm": alarms[0] if alarms else None,
            "false_alarms": sum(pd.Timestamp(alarm["time"]) < break_time for alarm in account.alarms),
            "unconfirmed_crossings": len(getattr(account, "unconfirmed", [])),
            "alarmed_versions": sorted({alarm["version"] for alarm in account.alarms}),
            "bars_to_promotion": bar_of[min(promotions)] - break_bar if promotions else None,
            "post_break_sharpe_per_bar": sharpe(returns[after]),
            "post_break_edge_captured": sharpe(returns[after]) / sharpe(oracle),
            "captured_over_first_bars": {str(bars): sharpe(returns[after][:bars]) / sharpe(oracle[:bars])
                                         for bars in HORIZONS if bars < len(oracle)},
            "promotions_after_break": len(promotions), "versions": len(registry.file.versions),
            "bars_stood_aside": int(ledger["stood_aside"].astype(bool).sum())}


def file_figures(account: Any, registry: Any) -> dict[str, Any]:
    """A replay's figures on a real bar file (no known break, no oracle): the account against buy-and-hold on the
    same bars with the same costs, its alarms, promotions and bars stood aside."""
    from rltrader.live.paper import paper_summary

    summary = paper_summary(account)
    ledger = account.ledger_frame()
    return {"sharpe": summary["paper"].get("sharpe"), "sharpe_interval": summary["paper"].get("sharpe_interval"),
            "total_return": summary["paper"]["total_return"], "max_drawdown": summary["paper"]["max_drawdown"],
            "buy_and_hold_sharpe": summary["buy_and_hold"].get("sharpe"),
            "buy_and_hold_return": summary["buy_and_hold"]["total_return"], "bars": len(ledger),
            "alarms": len(account.alarms), "alarm_times": [alarm["time"] for alarm in account.alarms],
            "promotions": sum(version.decision.get("kind") == "promote" for version in registry.file.versions) - 1,
            "versions": len(registry.file.versions), "bars_stood_aside": int(ledger["stood_aside"].astype(bool).sum())}


def without_break(scheme: str, args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    """``scheme`` replayed on the same kind of market without a break: its false alarms, the bars it stood aside,
    and the share of the oracle's Sharpe it captured over the replay."""
    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import SUITE_SETTINGS, write_market

    work.mkdir(parents=True)
    market = KnownAnswerMarket(kind=args.kind, bars=args.bars, seed=seed, **SUITE_SETTINGS.get(args.kind, {}))
    path = work / "market.csv"
    write_market(market, path)
    source = pd.read_csv(path)
    times = pd.to_datetime(source["time"], unit="s")
    account, registry = replay_scheme(scheme, **SCHEMES[scheme], source=source, times=times, args=args, seed=seed,
                                      work=work, sizes=SIZES[args.sizes])
    returns = ledger_returns(account)
    oracle = oracle_returns(market, path, times[args.start], work)
    assert len(oracle) == len(returns), "the oracle and the account trade the same bars"
    return {"alarms": len(account.alarms), "alarmed_versions": sorted({alarm["version"] for alarm in account.alarms}),
            "unconfirmed_crossings": len(getattr(account, "unconfirmed", [])),
            "bars": len(returns), "edge_captured": sharpe(returns) / sharpe(oracle),
            "bars_stood_aside": int(account.ledger_frame()["stood_aside"].astype(bool).sum()),
            "promotions": sum(version.decision.get("kind") == "promote" for version in registry.file.versions) - 1}


@contextlib.contextmanager
def kept_or_temporary(keep: Path | None, prefix: str) -> Iterator[str]:
    """The folder the replays write to: ``keep`` (created, left in place: the registries, paper ledgers and
    alarms to read afterwards) or a temporary one removed at the end."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
            yield scratch
        return
    if keep.exists() and any(keep.iterdir()):
        raise SystemExit(f"--keep {keep}: not empty; name a new or empty folder")
    keep.mkdir(parents=True, exist_ok=True)
    yield str(keep)


def main_file(args: argparse.Namespace) -> None:
    """``--data FILE``: the weekly replay of a real bar file's last ``--weeks`` steps, every scheme side by side."""
    from rltrader.config import load_config
    from rltrader.data import load_bars

    source = pd.read_csv(args.data, dtype=str)  # written back as read
    times = pd.DatetimeIndex(load_bars(args.data, load_config().data).bars.index)
    assert len(times) == len(source), f"{args.data}: every row must load as a bar to be replayed row by row"
    args.bars = len(source)
    args.start = args.bars - args.weeks * args.step
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with kept_or_temporary(args.keep, "retrain-file-") as scratch:
        for scheme in args.schemes:
            account, registry = replay_scheme(scheme, **SCHEMES[scheme], source=source, times=times, args=args,
                                              seed=args.seeds[0], work=Path(scratch), sizes={})
            results[scheme] = file_figures(account, registry)
            print(f"{scheme}: {json.dumps(results[scheme])}", flush=True)
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    for scheme, figures in results.items():
        interval = figures["sharpe_interval"] or [None, None]
        print(f"{scheme:<17} Sharpe {number(figures['sharpe'])} [{number(interval[0])}, {number(interval[1])}], "
              f"return {100 * figures['total_return']:+.1f}% (buy-and-hold {number(figures['buy_and_hold_sharpe'])}, "
              f"{100 * figures['buy_and_hold_return']:+.1f}%), {figures['alarms']} alarms, {figures['promotions']} "
              f"promotions, {figures['bars_stood_aside']:,} of {figures['bars']:,} bars stood aside")
    print(json.dumps({**results, "data": str(args.data), "weeks": args.weeks, "step": args.step,
                      "seed": args.seeds[0], "profile": args.profile,
                      "seconds": round(time.perf_counter() - started, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="time_of_day", choices=["time_of_day", "momentum", "volume"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--bars", type=int, default=23_000)  # 12,000 after the break, the replay
    parser.add_argument("--start", type=int, default=9_000)
    parser.add_argument("--break_at", type=int, default=11_000)
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--schemes", nargs="*", default=None, choices=list(SCHEMES))
    parser.add_argument("--data", type=Path, default=None,
                        help="a real bar file instead: the weekly replay of its last --weeks steps of --step bars "
                             "(default windows, no known break: each scheme against buy-and-hold)")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--without_break", nargs="*", default=None, choices=list(SCHEMES),
                        help="schemes replayed on each seed's market without a break (default: today's and the "
                             "defaults'; none: skip)")
    parser.add_argument("--profile", default=None,
                        help="the challengers' training budget, a profile name (default: retrain.profile, quick); "
                             "'recurrent' names only the default algorithm, so it trains on train's own budget")
    parser.add_argument("--sizes", default="defaults", choices=list(SIZES),
                        help="the retrain's windows: defaults (retrain's own, 6,000 / 1,200 / 600 bars: the first "
                             "model needs about 7,900, hence --start 9000) or month (3,000 / 600 / 400, M15's month, "
                             "week and 4 days: the replay before stop 61, with --bars 21000 --start 7000 --break_at "
                             "9000)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="an empty folder to write the replays to and leave in place (registries, paper "
                             "ledgers, alarms); default: a temporary folder")
    args = parser.parse_args()
    if args.data is not None:
        args.schemes = args.schemes or ["today", "stand aside"]
        return main_file(args)
    args.schemes = list(SCHEMES)[:3] if args.schemes is None else args.schemes
    args.without_break = list(dict.fromkeys(["today", default_scheme()])) if args.without_break is None \
        else args.without_break
    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import SUITE_SETTINGS, break_times, write_market

    started = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {scheme: [] for scheme in args.schemes}
    quiet: dict[str, list[dict[str, Any]]] = {scheme: [] for scheme in args.without_break}  # markets without a break
    with kept_or_temporary(args.keep, "retrain-break-") as scratch:
        for seed in args.seeds:
            work = Path(scratch) / f"seed_{seed}"
            work.mkdir()
            market = KnownAnswerMarket(kind=args.kind, bars=args.bars, seed=seed,
                                       breaks=[args.break_at / args.bars], **SUITE_SETTINGS.get(args.kind, {}))
            path = work / "market.csv"
            write_market(market, path)
            source = pd.read_csv(path)
            break_time = break_times(market)[0]
            for scheme in args.schemes:
                account, registry = replay_scheme(scheme, **SCHEMES[scheme], source=source,
                                                  times=pd.to_datetime(source["time"], unit="s"), args=args,
                                                  seed=seed, work=work, sizes=SIZES[args.sizes])
                figures = break_figures(account, registry, market, path, source, work, break_time)
                results[scheme].append({"seed": seed, **figures})
                print(f"seed {seed} {scheme}: {json.dumps(figures)}", flush=True)
            for scheme in args.without_break:
                quiet[scheme].append({"seed": seed, **without_break(scheme, args, seed,
                                                                    Path(scratch) / f"quiet_{seed}" / scheme)})
                print(f"seed {seed} without a break, {scheme}: {json.dumps(quiet[scheme][-1])}", flush=True)
    summary: dict[str, Any] = {}
    for scheme, runs in results.items():
        captured = [run["post_break_edge_captured"] for run in runs]
        summary[scheme] = {key: [run[key] for run in runs] for key in (
            "bars_to_alarm", "bars_to_promotion", "post_break_edge_captured", "false_alarms", "bars_stood_aside")}
        summary[scheme]["post_break_edge_captured_mean"] = float(np.mean(captured))
        horizons = {bars: [run["captured_over_first_bars"][bars] for run in runs]
                    for bars in runs[0]["captured_over_first_bars"]}
        summary[scheme]["captured_over_first_bars_mean"] = {bars: float(np.mean(values))
                                                           for bars, values in horizons.items()}
        print(f"{scheme:<17} bars to alarm {summary[scheme]['bars_to_alarm']}, bars to promotion "
              f"{summary[scheme]['bars_to_promotion']}, stood aside {summary[scheme]['bars_stood_aside']}; oracle's "
              f"Sharpe captured over the {args.bars - args.break_at:,} bars after the break "
              f"{[round(value, 2) for value in captured]} (mean {np.mean(captured):.2f})"
              + "".join(f"; over the first {int(bars):,}: mean {np.mean(values):.2f}"
                        for bars, values in horizons.items()))
    headline: dict[str, Any] = {"default_scheme": default_scheme(), "without_break": {}}
    for scheme, runs in quiet.items():
        alarms, bars = sum(run["alarms"] for run in runs), sum(run["bars"] for run in runs)
        headline["without_break"][scheme] = {"false_alarms_per_10k_bars": alarms * 10_000 / bars,
                                             **{key: [run[key] for run in runs] for key in runs[0]}}
        if scheme == default_scheme():
            headline["false_alarms_per_10k_bars"] = alarms * 10_000 / bars
        versions = sum(len(run["alarmed_versions"]) for run in runs)
        print(f"without a break, {scheme}: {alarms} alarms in {bars:,} bars ({alarms * 10_000 / bars:.2f} per "
              f"10,000; on {versions} champion versions; "
              f"{sum(run['unconfirmed_crossings'] for run in runs)} crossings unconfirmed); oracle's Sharpe "
              f"captured {[round(run['edge_captured'], 2) for run in runs]}, bars stood aside "
              f"{[run['bars_stood_aside'] for run in runs]}")
    if default_scheme() in summary:
        headline.update({key: summary[default_scheme()][key] for key in ("bars_to_alarm", "bars_to_promotion",
                                                                         "post_break_edge_captured")})
    print(json.dumps({**headline, **summary, "kind": args.kind, "seeds": args.seeds, "bars": args.bars,
                      "start": args.start,
                      "break_at": args.break_at, "step": args.step, "sizes": args.sizes, "profile": args.profile,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    from rltrader.runtime.interrupts import stop_on_sigterm

    try:
        with stop_on_sigterm():  # SIGTERM unwinds as Ctrl-C does: the temporary folder goes with it
            main()
    except KeyboardInterrupt as stopped:  # Ctrl-C or SIGTERM: stopped, said in one line
        print(f"bench/retrain_break.py: stopped ({stopped or 'SIGINT'})", file=sys.stderr)
        sys.exit(getattr(stopped, "exit_code", 130))
