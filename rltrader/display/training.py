"""What ``rltrader train`` prints around a run: where a resumed run goes on from, and the closing lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rltrader.records import ResumePoint, RunSummary


def resume_line(point: ResumePoint, planned: int) -> str:
    """``Resuming results/42: 2 of 6 iterations trained; iteration 3 goes on from its checkpoint at 4,096
    timesteps`` (said at the default verbosity: a person should know the run is not new)."""
    if point.finished:
        return f"Resuming {point.run_dir}: finished already ({point.finished_iterations} iterations); only its " \
               "final report and bundle are written again"
    next_iteration = point.finished_iterations + 1
    where = (f"iteration {next_iteration} goes on from its checkpoint at {point.checkpoint_timesteps:,} timesteps"
             if point.checkpoint_timesteps is not None else f"iteration {next_iteration} starts from its beginning")
    if next_iteration > planned:
        where = "every planned iteration is trained; the run finishes"
    return f"Resuming {point.run_dir}: {point.finished_iterations} of {planned} iterations trained; {where}"


def train_done_lines(summary: RunSummary, seed: int, run_dir: Path) -> list[str]:
    """The closing lines: the run in one line (the speedup against the original loop), then where its files are."""
    return [f"rltrader train ({summary.method}, seed {seed}): {len(summary.iterations)} iterations, "
            f"{summary.total_timesteps:,} timesteps in {summary.total_time_seconds / 60:.1f} min, "
            f"speedup {summary.total_speedup_achieved:.2f}x ({summary.speedup_basis}), "
            f"{summary.total_timesteps_saved:,} timesteps saved",
            f"  best model  {summary.best_model.path}\n  report      {summary.report}\n"
            f"  summary     {run_dir / 'optimization_summary.json'}\n"
            f"  bundle      {run_dir / 'bundle'}  (the model and all it needs; `rltrader export` copies it)"]


def benchmark_files_line(dirs: Sequence[Path]) -> str:
    return (f"  wrote {dirs[0] / 'quality.json'} and each seed's comparison.json "
            f"({', '.join(map(str, dirs))})")


__all__ = ["benchmark_files_line", "resume_line", "train_done_lines"]
