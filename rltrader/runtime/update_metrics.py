"""One row per update: what it ran with (mode, batch, epochs, threads) and how fast the last one went.

The trainer attaches :class:`UpdateMetrics` to every run, after the hooks that change the
settings, so each row says what the coming update really runs with. Rows go to
``<run>/metrics/updates.csv`` (which ``rltrader train``'s progress bars follow) and, as
``performance_mode/*`` scalars, to the model's SB3 logger: TensorBoard shows them next to
SB3's own training diagnostics.

The CSV is kept as text and rewritten atomically with each row (a few kB per run), so a
kill never leaves a torn last line; a resumed run continues its file.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from rltrader.atomic import write_text
from rltrader.runtime.hooks import UpdateHook
from rltrader.runtime.performance_mode import MODES, AppliedMode

METRICS_FILE = Path("metrics") / "updates.csv"
METRICS_COLUMNS = ("time", "timesteps", "mode", "batch_size", "n_epochs", "torch_threads", "timesteps_per_s")
NO_MODE = "none"  # a run without a performance-mode hook (a direct Trainer): settings as configured


class UpdateMetrics(UpdateHook):
    """The per-update recorder; ``applied_mode`` says which performance mode is in force."""

    def __init__(self, run_dir: Path, applied_mode: Callable[[], str | None] = lambda: None) -> None:
        self.csv_path = Path(run_dir) / METRICS_FILE
        if self.csv_path.is_file():
            self.text = self.csv_path.read_text(encoding="utf-8")
        else:
            self.text = ",".join(METRICS_COLUMNS) + "\n"
        self.step = self.text.count("\n") - 1
        self.mode_in_force = applied_mode
        self._model: Any = None
        self._last: tuple[int, float] | None = None

    def __call__(self, model: Any, timesteps_done: int) -> None:
        now = time.perf_counter()
        if model is not self._model:  # a new model (iteration, resume): no rate across the gap
            self._model, self._last = model, None
        rate = None
        if self._last is not None and timesteps_done > self._last[0]:
            rate = (timesteps_done - self._last[0]) / (now - self._last[1])
        self._last = (timesteps_done, now)
        applied = AppliedMode(self.mode_in_force() or NO_MODE, model.batch_size, model.n_epochs,
                              torch.get_num_threads())
        self.add(applied, timesteps_done, rate)
        scalars = {"batch_size": applied.batch_size, "n_epochs": applied.n_epochs,
                   "torch_threads": applied.torch_threads, "timesteps_per_s": rate}
        if applied.mode in MODES:
            scalars["performance"] = MODES.index(applied.mode)
        for name, value in scalars.items():
            if value is not None:  # dumped with SB3's next row, at this update's timesteps
                model.logger.record(f"performance_mode/{name}", value)

    def add(self, applied: AppliedMode, timesteps: int, timesteps_per_s: float | None) -> None:
        """Append one row to the CSV (rewritten atomically)."""
        row = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "timesteps": timesteps,
               **asdict(applied), "timesteps_per_s": "" if timesteps_per_s is None else round(timesteps_per_s, 1)}
        line = io.StringIO()
        csv.DictWriter(line, fieldnames=METRICS_COLUMNS, lineterminator="\n").writerow(row)
        self.text += line.getvalue()
        write_text(self.csv_path, self.text)
        self.step += 1


__all__ = ["METRICS_COLUMNS", "METRICS_FILE", "UpdateMetrics"]
