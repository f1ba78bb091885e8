"""SB3's own training diagnostics for every model the trainer trains.

SB3 records ``train/approx_kl``, ``train/clip_fraction``, the policy, value and entropy
losses and ``train/explained_variance`` at every update, and ``time/fps`` per rollout;
without a logger they are thrown away. Each iteration's model gets
``configure(<run>/tensorboard, ["csv", "tensorboard"])``'s outputs, with two changes a
run needs that a single ``learn()`` does not:

- one x axis for the whole run: every ``learn()`` counts timesteps from zero (an
  iteration, a resumed segment), so rows are written at the run's timesteps so far, also
  recorded as ``time/run_timesteps`` (the CSV has no step column of its own);
- ``progress.csv`` continues across processes (a flow task per iteration, a resume after
  a kill) instead of starting over, and a row torn by a kill is dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

TENSORBOARD_DIR = "tensorboard"
PROGRESS_CSV = "progress.csv"


class ContinuedCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV writer appending to the file a previous process left, header and all."""

    def __init__(self, filename: str) -> None:
        if not os.path.isfile(filename) or os.path.getsize(filename) == 0:
            super().__init__(filename)
            return
        self.file = open(filename, "r+")  # noqa: SIM115 - SB3 keeps it open and closes it in close()
        text = self.file.read()
        complete = text[: text.rfind("\n") + 1]  # a kill mid-row leaves a partial last line
        self.file.seek(0)
        self.file.truncate()
        self.file.write(complete)
        self.file.flush()
        header = complete.split("\n", 1)[0]
        self.keys = header.split(",") if header else []
        self.separator, self.quotechar = ",", '"'


class RunLogger(Logger):
    """SB3's logger, writing each row at ``step_offset`` + the ``learn()`` call's own timesteps."""

    def __init__(self, folder: Path, step_offset: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(str(folder), [ContinuedCSVOutputFormat(str(folder / PROGRESS_CSV)),
                                       TensorBoardOutputFormat(str(folder))])
        self.step_offset = step_offset

    def dump(self, step: int = 0) -> None:
        self.record("time/run_timesteps", self.step_offset + step)
        super().dump(self.step_offset + step)


def run_logger(run_dir: Path, timesteps_before: int) -> RunLogger:
    """The logger of one ``learn()`` call that starts ``timesteps_before`` timesteps into the run."""
    return RunLogger(Path(run_dir) / TENSORBOARD_DIR, timesteps_before)


__all__ = ["PROGRESS_CSV", "TENSORBOARD_DIR", "ContinuedCSVOutputFormat", "RunLogger", "run_logger"]
