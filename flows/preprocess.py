"""The preprocessing flow: bar file in, cached features and a data report out.

Until training lands this is the pipeline's main job; the training flow will call the
same task as its first step.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from rltrader.config import parse_config
from rltrader.display.data_report import data_report_markdown
from tasks.preprocess import run_preprocessing


@flow(name="preprocess", flow_run_name="preprocess {data_path}")
def preprocess_flow(data_path: str, config: dict[str, Any] | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Preprocess ``data_path`` with ``config`` (a dict shaped like ``configs/default.yaml``)."""
    resolved = parse_config(config or {}, source="preprocess flow")
    prepared = run_preprocessing(data_path, resolved, use_cache=use_cache)
    create_markdown_artifact(
        markdown=data_report_markdown(prepared, resolved),
        key="data-report",
        description=f"Data report for {data_path}",
    )
    return prepared.to_dict()
