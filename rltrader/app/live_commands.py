"""``rltrader signal`` and ``rltrader paper``: a bundle deciding on a bar file's new closed bars.

Each handler reads the file (a wrong one is refused in one line before torch loads), runs the decision
stream or the paper account, and prints what :mod:`rltrader.display.live` formats; ``--follow`` watches the
file and goes on with each new closed bar until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rltrader.display.live import ledger_lines, no_new_bar_line, paper_standing_line, skipped_line, takeover_line

#: Ledger rows printed after a batch of bars; the rest are in ledger.csv.
SHOWN_ROWS = 8


def signal_command(args: argparse.Namespace) -> int:
    """The decision at the file's last closed bar as one JSON line (a line per new bar with ``--follow``)."""
    from rltrader.bundle import read_bundle
    from rltrader.live.bars import parse_bar_time, read_bar_file
    from rltrader.live.signal import FileWatcher, decision_record, last_decision_index, read_when_complete
    from rltrader.live.stream import DecisionStream

    bundle = read_bundle(args.bundle)
    read_bar_file(args.data_path, bundle.description)  # refuse a wrong file before torch loads
    stream = DecisionStream(bundle, parse_bar_time(args.start))
    watcher = FileWatcher(Path(args.data_path), args.poll)
    seen = watcher.signature()  # before the read: a bar appended while reading is a change
    began = time.perf_counter()
    batch = stream.advance(read_bar_file(args.data_path, bundle.description).bars)
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
            print(skipped_line("signal", stamp, why), file=sys.stderr, flush=True)
        for index in range(len(batch)):
            print(json.dumps(decision_record(stream, batch, index)), flush=True)
    return 0


def paper_command(args: argparse.Namespace) -> int:
    """Open or continue a paper account; trade the file's new bars (and each new one with ``--follow``)."""
    from rltrader.live.paper import alarm_reason, holding, open_paper_account, paper_summary, write_paper_report
    from rltrader.live.signal import FileWatcher, read_when_complete

    account = open_paper_account(args.bundle, args.data_path, args.name, args.paper_dir, args.start, args.model,
                                 args.registry_dir, args.stand_aside)

    def switch() -> None:
        ended = len(account.stood_aside)
        changed = account.follow_champion()
        if changed:
            print(takeover_line(args.name, args.model, changed), flush=True)
        print_stand_aside(ended)

    def print_stand_aside(ended: int) -> None:
        for period in account.stood_aside[ended:]:
            print(f"rltrader paper {args.name}: trading again after standing aside since {period['since']}: "
                  f"{period['reason']}", flush=True)

    def step(bars: Any) -> None:
        before, alarms, ended = len(account.ledger["time"]), len(account.alarms), len(account.stood_aside)
        aside = account.standing_aside
        batch = account.process(bars)
        print_stand_aside(ended)
        for stamp, why in batch.rejected:
            print(skipped_line("paper", stamp, why), file=sys.stderr, flush=True)
        added = len(account.ledger["time"]) - before
        if added > SHOWN_ROWS:
            print(f"  ... {added - SHOWN_ROWS:,} earlier bars in {account.root / 'ledger.csv'}")
        for line in ledger_lines(account.ledger_frame().tail(min(added, SHOWN_ROWS))):
            print(line, flush=True)
        for alarm in account.alarms[alarms:]:
            print(f"rltrader paper {args.name}: break alarm: {alarm_reason(alarm, args.name)}", flush=True)
        if account.standing_aside is not None and account.standing_aside != aside:
            print(f"rltrader paper {args.name}: standing aside (flat) from the bar after "
                  f"{account.standing_aside['since']} until a retrain has the evidence (--no-stand_aside trades "
                  "the champion through)", flush=True)
        paths = write_paper_report(account)
        standing = paper_standing_line(args.name, paper_summary(account), paths["picture"])
        if standing:
            print(standing, flush=True)

    watcher = FileWatcher(Path(args.data_path), args.poll)
    seen = watcher.signature()  # before the read: a bar appended while reading is a change
    bars = account.new_bars()  # a wrong file is refused here, before anything is written
    with holding(account):
        switch()
        if len(bars) or account.created:
            step(bars)
        else:
            print(no_new_bar_line(args.name, account.last_time, args.data_path), flush=True)
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


def _add_live_options(parser: argparse.ArgumentParser, start_help: str, bundle_required: bool = True) -> None:
    """The options of the commands that decide on a bar file: the bundle, the file, when to start, following."""
    parser.add_argument("--bundle", type=Path, required=bundle_required,
                        help="a bundle (rltrader export, or RUN_DIR/bundle)")
    parser.add_argument("--data_path", type=Path, required=True, help="bar file (a terminal export that grows)")
    parser.add_argument("--start", default=None, help=start_help)
    parser.add_argument("--follow", action="store_true", help="keep watching the file for new bars (Ctrl-C stops)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the file (--follow)")


def add_live_commands(commands: Any) -> None:
    """``signal`` and ``paper`` on ``rltrader``'s subparsers."""
    signal_parser = commands.add_parser(
        "signal", help="print a bundle's decision for the next bar of a bar file, as one JSON line",
        description="Read the bar file, warm the bundle's features up on its history, and print the decision at "
        "the last closed bar (action, probabilities, the bar it was decided on, the bars of history behind it) as "
        "one JSON line. The account behind it starts flat after the warm-up (or at --start) and trades every bar "
        "since, as the backtest does. --follow watches the file and prints a line per new closed bar.")
    _add_live_options(signal_parser, "first bar to decide on (default: after the warm-up)")
    signal_parser.set_defaults(handler=signal_command)

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
    paper.add_argument("--stand_aside", action=argparse.BooleanOptionalAction, default=None,
                       help="with --model: go flat from the bar after a break alarm on the champion until a retrain "
                            "has the evidence (a new champion, or the champion kept where it earned after the break), "
                            "when the alarm finds the champion losing; kept with the account (a new account: yes; "
                            "--no-stand_aside trades the champion through)")
    paper.add_argument("--name", required=True, help="the paper account's name")
    paper.add_argument("--paper_dir", type=Path, default=Path("results/paper"),
                       help="where paper accounts live (default: results/paper)")
    paper.set_defaults(handler=paper_command)


__all__ = ["add_live_commands", "paper_command", "signal_command"]
