"""Prefect deployments of the pipeline and the one command that serves them (``rltrader serve``)."""
