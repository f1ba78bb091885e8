"""Prefect flows: the pipeline as it is triggered from the CLI, the UI or a schedule."""
