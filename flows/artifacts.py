"""What a training run shows on the Prefect Artifacts page (every artifact has a key).

- ``training-progress``: iterations done out of planned, updated after each one;
- ``training-iterations``: a table of the iterations (timesteps, wall time, validation
  score, early stop, warm start, performance mode, candidate);
- ``training-summary``: the best model against buy-and-hold on the test split, the
  speedup and its basis, where the report lives, and the test split's equity, drawdown and
  position picture;
- ``training-report``: the whole ``report.md`` (validation and test) with its pictures.

Pictures are embedded as ``data:`` URIs: the Prefect UI renders them (checked in headless
Chromium), while a ``file://`` link, which it used to be, opens nothing in a browser and
nothing at all on another machine.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    MarkdownArtifact,
    TableArtifact,
    create_markdown_artifact,
    create_progress_artifact,
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


def table_artifact(rows: list[dict[str, Any]], key: str, description: str, flow_run_id: UUID | None = None) -> None:
    """A table artifact on ``flow_run_id``'s page, else on this run's.

    A fan-out subflow (candidates, walk-forward runs, trials) publishes on the run the user started
    and watches, which is where the UI shows the table; the artifact's key collects its versions."""
    TableArtifact(table=rows, key=key, description=description, flow_run_id=flow_run_id).create()


def markdown_artifact(text: str, key: str, description: str, flow_run_id: UUID | None = None) -> None:
    """A markdown artifact on ``flow_run_id``'s page, else on this run's (see :func:`table_artifact`)."""
    MarkdownArtifact(markdown=text, key=key, description=description, flow_run_id=flow_run_id).create()


def publish_iterations(run_dir: Path, records: Sequence[IterationRecord], flow_run_id: UUID | None = None) -> None:
    table_artifact(iteration_table_rows(records), ITERATIONS_KEY, f"Iterations of {run_dir}", flow_run_id)


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def embed_images(markdown: str, folder: Path) -> str:
    """Every ``![alt](relative.png)`` in ``markdown`` inlined as a data URI (files missing stay links)."""
    def inline(match: re.Match[str]) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')})"
    return _IMAGE.sub(inline, markdown)


def publish_summary(summary: RunSummary) -> None:
    report = Path(summary.report).resolve()
    picture = "\n\n## Test split: equity, drawdown and position\n\n![test equity](test/equity.png)\n"
    create_markdown_artifact(embed_images(summary_markdown(summary) + picture, report.parent), key=SUMMARY_KEY,
                             description="Best model vs buy-and-hold on the test split")
    text = report.read_text(encoding="utf-8") if report.is_file() else f"`{report}` is missing"
    create_markdown_artifact(embed_images(text, report.parent) + f"\n\nFiles: `{report.parent}`\n", key=REPORT_KEY,
                             description="The full report: validation and test, with their equity pictures")
