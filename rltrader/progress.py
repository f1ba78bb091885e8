"""What ``rltrader train`` shows while it trains and when it is done.

The training runs in the Prefect flow (possibly in other processes: parallel candidates),
so the terminal does not hook into it; it watches the files every run writes anyway:
``metrics/updates.csv`` (one row per update: timesteps, timesteps/s, mode) and
``run_state.json`` (one record per finished iteration). A bar per iteration shows
timesteps, timesteps/s and mode; each finished iteration prints its line (time, score,
average iteration time, time remaining, estimated speedup so far, timesteps saved).
Without a terminal (CI, a pipe) there are no bars, only those lines.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rltrader.config import Config
from rltrader.formatting import cell, number
from rltrader.training.budget import iteration_budget
from rltrader.training.run_state import RunState
from rltrader.training.summary import iteration_progress_line

POLL_SECONDS = 0.5


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet (files are replaced atomically, never torn)
        return None


def _update_rows(path: Path) -> list[dict[str, str]]:
    try:
        return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except OSError:
        return []


class LiveProgress:
    """Watches ``run_dir`` from a thread while the flow trains; see the module docstring."""

    def __init__(self, run_dir: Path, config: Config, console: Console, bars: bool, lines: bool,
                 parallel_candidates: int = 1) -> None:
        self.run_dir, self.config, self.console = Path(run_dir), config, console
        self.bars, self.lines = bars and console.is_terminal, lines
        self.parallel = parallel_candidates > 1
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]} ts/s  {task.fields[mode]}"), TimeElapsedColumn(),
                                 console=console, transient=False, disable=not self.bars)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rltrader-progress", daemon=True)
        self._finished = -1
        self._task: Any = None
        self._rows_before = 0

    def __enter__(self) -> "LiveProgress":
        state = _read_json(self.run_dir / "run_state.json")
        self._finished = len(state["iterations"]) if state else 0
        self._rows_before = len(_update_rows(self._updates_path(self._finished)))
        self.progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()
        self.progress.stop()

    def _updates_path(self, iteration: int) -> Path:
        root = self.run_dir / "candidates" / f"iter_{iteration:02d}" / "cand_0" if self.parallel else self.run_dir
        return root / "metrics" / "updates.csv"

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._poll()

    def _poll(self) -> None:
        training = self.config.training
        raw = _read_json(self.run_dir / "run_state.json")
        records = raw["iterations"] if raw else []
        while self._finished < len(records):  # iterations that ended since the last look
            record = records[self._finished]
            if self._task is not None:
                self.progress.update(self._task, total=record["timesteps"], completed=record["timesteps"],
                                     rate=f"{record['timesteps_per_second'] or 0:,.0f}")
            if self.lines:
                state = RunState(**{key: value for key, value in raw.items() if key != "version"})
                state.iterations = records[: self._finished + 1]
                self.console.print(iteration_progress_line(state, training), highlight=False, markup=False,
                                   soft_wrap=True)
            self._finished += 1
            # the next iteration's rows: a new file per iteration with candidates, else after these
            self._task = None
            self._rows_before = 0 if self.parallel else len(_update_rows(self._updates_path(self._finished)))
        if self._finished >= training.iterations:
            return
        iteration = self._finished
        budget = iteration_budget(iteration, training, self.config.optimizations.adaptive_timesteps)
        if self._task is None:
            self._task = self.progress.add_task(f"Iteration {iteration + 1}/{training.iterations}", total=budget,
                                                rate="-", mode="")
        rows = _update_rows(self._updates_path(iteration))[self._rows_before:]
        if rows:
            last = rows[-1]
            self.progress.update(self._task, completed=min(int(last["timesteps"]), budget),
                                 rate=f"{float(last['timesteps_per_s']):,.0f}" if last["timesteps_per_s"] else "-",
                                 mode=last["mode"])




def final_tables(summary: dict[str, Any]) -> list[Table]:
    """The iterations, and the best model against buy-and-hold on validation and test."""
    iterations = Table(title=f"Iterations ({summary['method']} method, seed {summary['seed']})", title_justify="left")
    for column in ("#", "phase", "timesteps", "wall", "ts/s", "validation", "early stop", "warm start"):
        iterations.add_column(column, justify="left" if column in ("phase",) else "right")
    for record in summary["iterations"]:
        iterations.add_row(str(record["iteration"] + 1), record["phase"], f"{record['timesteps']:,}",
                           f"{record['wall_seconds'] / 60:.1f} min", f"{record['timesteps_per_second'] or 0:,.0f}",
                           number(record["validation_score"]), "yes" if record["early_stopped"] else "",
                           "yes" if record["warm_started"] else "")
    best = summary["best_model"]
    quality = Table(title=f"Best model (iteration {best['iteration'] + 1}, validation {best['metric']} "
                          f"{number(best['score'])}) vs buy-and-hold", title_justify="left")
    for column in ("", "agent validation", "buy-and-hold validation", "agent test", "buy-and-hold test"):
        quality.add_column(column, justify="right")
    for label, key, as_percent in (("total return", "total_return", True), ("Sharpe", "sharpe", False),
                                   ("Sortino", "sortino", False), ("max drawdown", "max_drawdown", True),
                                   ("trades", "trades", False)):
        values = [summary[split][who][key] for split in ("validation", "test") for who in ("agent", "buy_and_hold")]
        quality.add_row(label, *[cell(value, as_percent) for value in values])
    return [iterations, quality]
