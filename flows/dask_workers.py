"""Dask workers that report to the flow's Prefect API and never start a Prefect server of their own.

A Dask worker runs the task bodies the flow submits, with the flow's settings copied into the task
run's context; but Prefect's log and event workers send from threads of their own, which read the
worker process's environment. A worker started by ``dask worker`` has no ``PREFECT_API_URL`` there, so
Prefect started a temporary server on it, and that server outlived the worker when it was stopped.
This plugin, registered on the cluster when a flow's runner starts, sets the flow's API address in
every worker's environment (workers that join later included) and turns temporary servers off there.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from flows.server import pin_worker_api


class ReportToFlowApi(WorkerPlugin):
    """Points a worker's Prefect at ``api_url`` (see the module docstring).

    :param api_url: the API of the flow that submits to the cluster
    """

    name = "rltrader-prefect-api"

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def setup(self, worker: Any) -> None:
        pin_worker_api(self.api_url)
