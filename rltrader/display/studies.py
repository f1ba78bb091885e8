"""What ``rltrader tune`` and ``rltrader walkforward`` print when they are done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from rltrader.display.tuning import overfitting_text


def tune_result_lines(result: Any) -> list[str]:
    """The study's outcome: its best trial, the config it wrote, where the trials are.

    :param result: a :class:`~rltrader.tuning.study.StudyResult`
    """
    lines = [f"rltrader tune {result.study}: {result.finished} trials finished in {result.root}"]
    if result.best_trial is None or result.best_value is None:
        return [*lines, "  no trial completed (every one pruned or failed): nothing to write"]
    root = Path(result.root)
    return [*lines,
            f"  best        trial {result.best_trial}, validation {result.best_value:.3f}: {result.best_params}",
            f"  config      {result.best_config}  (rltrader train --config {result.best_config})",
            f"  trust       {overfitting_text(result.overfitting)}",
            f"  trials      {root / 'trials.json'}; importances {root / 'importances.json'}; "
            f"overfitting {root / 'overfitting.json'}"]


def walkforward_table(name: str, rows: list[dict[str, Any]]) -> Table:
    """Each fold's best model on its test window (a CPCV split's on its test groups), one row per fold and seed."""
    table = Table(title=f"CPCV {name}: each split's best model on its test groups" if "split" in rows[0] else
                  f"Walk-forward {name}: each fold's best model on its test window")
    for column in rows[0]:
        table.add_column(column, justify="left" if column.startswith("test") else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    return table


def walkforward_files_lines(files: dict[str, str], root: str | None) -> str:
    first = (f"  paths            {files['paths']} and {Path(files['plot']).name}" if "paths" in files else
             f"  stitched equity  {files['stitched_equity']} and {Path(files['plot']).name}")
    return f"{first}\n  summary          {Path(root or '.') / 'summary.json'}"


__all__ = ["tune_result_lines", "walkforward_files_lines", "walkforward_table"]
