"""Where a run directory's work stands before a command goes on with it: what a resumed run says first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rltrader.records import ResumePoint
from rltrader.training.checkpoints import CheckpointStore
from rltrader.training.run_state import RunState

SUMMARY_FILE = "optimization_summary.json"


def resume_point(run_dir: str | Path,
                 expected: Callable[[], dict[str, Any]] | None = None) -> ResumePoint | None:
    """The earlier work in ``run_dir``, or None for a new run (nothing recorded, nothing checkpointed).

    :param expected: gives the run's fingerprint (:func:`~rltrader.training.run_state.fingerprint`; it hashes the
        bar file, so it is called only when a run state exists); a directory holding a run of other settings is
        then None too: it will not be resumed (the trainer refuses it, in one line)
    """
    run_dir = Path(run_dir)
    state = RunState.read(run_dir / "run_state.json")
    if state is not None and expected is not None and state.fingerprint != expected():
        return None
    done = state.next_iteration if state is not None else 0
    checkpoint = CheckpointStore(run_dir).latest(done)
    if state is None and checkpoint is None:
        return None
    return ResumePoint(run_dir=run_dir, finished_iterations=done,
                       checkpoint_timesteps=None if checkpoint is None else checkpoint.timesteps,
                       finished=(run_dir / SUMMARY_FILE).is_file())


__all__ = ["resume_point"]
