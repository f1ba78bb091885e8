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
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rltrader.config import Config
from rltrader.display.formatting import rate
from rltrader.display.lines import iteration_line
from rltrader.runtime.update_metrics import METRICS_FILE
from rltrader.training.budget import iteration_budget
from rltrader.training.run_state import RunState
from rltrader.training.summary import speedup_so_far

POLL_SECONDS = 0.5


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

    def __enter__(self) -> LiveProgress:
        state = RunState.read(self.run_dir / "run_state.json")
        self._finished = state.next_iteration if state else 0
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
        return root / METRICS_FILE

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._poll()

    def _poll(self) -> None:
        training = self.config.training
        state = RunState.read(self.run_dir / "run_state.json")
        records = state.iterations if state else []
        while self._finished < len(records):  # iterations that ended since the last look
            record = records[self._finished]
            if self._task is not None:
                self.progress.update(self._task, total=record.timesteps, completed=record.timesteps,
                                     rate=rate(record.timesteps_per_second))
            if self.lines and state is not None:
                so_far = state.model_copy(update={"iterations": records[: self._finished + 1]})
                line = iteration_line(so_far.iterations, training.iterations, training.selection_metric,
                                      record.best_score_after, speedup_so_far(so_far, training),
                                      state.original_throughput)
                self.console.print(line, highlight=False, markup=False, soft_wrap=True)
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
