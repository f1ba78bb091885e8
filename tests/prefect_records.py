"""The flow runs a Prefect database holds, read as a user reads them (``scripts/prefect_runs.py``, stdlib only).

Tests that start commands in subprocesses read their runs back from the database in the ``PREFECT_HOME``
they gave them: the commands' temporary servers are gone by then, the database stays.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "prefect_runs.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prefect_runs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prefect_flow_runs(database: Path) -> list[dict[str, str | None]]:
    """Every flow run in ``database``, oldest first: name, state (``CRASHED``...), its message, created."""
    return _script().flow_runs(database)


def database_path(home: str | Path | None = None) -> Path:
    """Where Prefect keeps ``home``'s database (default: the user's ``PREFECT_HOME``, else ``~/.prefect``)."""
    return _script().database_path(home)
