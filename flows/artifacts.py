"""What a training run shows on the Prefect Artifacts page (every artifact has a key).

- ``training-progress``: iterations done out of planned, updated after each one;
- ``training-iterations``: a table of the iterations (timesteps, wall time, validation
  score, early stop, warm start, performance mode, candidate);
- ``training-summary``: the best model against buy-and-hold on the test split, the
  speedup and where the report lives;
- ``training-report``: a link to the report on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from rltrader.display.markdown import summary_markdown
from rltrader.display.tables import iteration_table_rows
from rltrader.records import IterationRecord, RunSummary

PROGRESS_KEY = "training-progress"
ITERATIONS_KEY = "training-iterations"
SUMMARY_KEY = "training-summary"
REPORT_KEY = "training-report"


def start_progress(run_dir: Path, done: int, planned: int) -> UUID:
    return create_progress_artifact(100.0 * done / planned, key=PROGRESS_KEY,
                                    description=f"Iterations trained in {run_dir}")


def update_progress(artifact_id: UUID, done: int, planned: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / planned)


def publish_iterations(run_dir: Path, records: Sequence[IterationRecord]) -> None:
    create_table_artifact(iteration_table_rows(records), key=ITERATIONS_KEY, description=f"Iterations of {run_dir}")


def publish_summary(summary: RunSummary) -> None:
    create_markdown_artifact(summary_markdown(summary), key=SUMMARY_KEY,
                             description="Best model vs buy-and-hold on the test split")
    report = Path(summary.report).resolve()
    create_link_artifact(report.as_uri(), link_text=str(report), key=REPORT_KEY,
                         description="The full report (validation and test, equity curves)")
