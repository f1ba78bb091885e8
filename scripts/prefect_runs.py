"""How many flow runs a Prefect home's database holds, by state: ``python3 scripts/prefect_runs.py``.

The count the test suite must leave unchanged in the user's own ``PREFECT_HOME`` (the suite runs on a
temporary one), and a quick look for runs left open: ``--open`` lists the runs still Running (or
Pending, Scheduled, Paused), which no live process may be behind. Reads the SQLite database
read-only with the standard library alone (any Python 3, no server, nothing written); a home that
has no database yet holds 0 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path

OPEN_STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")


def database_path(home: str | Path | None = None) -> Path:
    """The database of ``home`` (default: ``PREFECT_HOME``, else ``~/.prefect``), as Prefect's default places it."""
    home = home or os.environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(home).expanduser() / "prefect.db"


def flow_runs(database: Path) -> list[dict[str, str | None]]:
    """Every flow run in ``database``, oldest first: name, state, its message, created; [] if there is no database."""
    if not database.is_file():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT flow_run.name, flow_run.state_type, flow_run_state.message, flow_run.created FROM flow_run "
            "LEFT JOIN flow_run_state ON flow_run_state.id = flow_run.state_id ORDER BY flow_run.created").fetchall()
    return [{"name": name, "state": state, "message": message, "created": created}
            for name, state, message, created in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="the Prefect home (default: PREFECT_HOME, else ~/.prefect)")
    parser.add_argument("--open", action="store_true", help="also list the runs in an open state")
    parser.add_argument("--json", action="store_true", help="one line of JSON instead")
    options = parser.parse_args(argv)
    database = database_path(options.home)
    try:
        runs = flow_runs(database)
    except sqlite3.Error as error:
        print(f"{database}: not a readable Prefect database ({error})", file=sys.stderr)
        return 2
    states: dict[str, int] = {}
    for run in runs:
        states[str(run["state"])] = states.get(str(run["state"]), 0) + 1
    still_open = [run for run in runs if run["state"] in OPEN_STATES]
    if options.json:
        print(json.dumps({"database": str(database), "flow_runs": len(runs), "states": states,
                          "open": [run["name"] for run in still_open]}))
        return 0
    by_state = ", ".join(f"{count} {state.capitalize()}" for state, count in sorted(states.items()))
    print(f"{database}: {len(runs)} flow runs" + (f" ({by_state})" if by_state else ""))
    if options.open:
        for run in still_open:
            print(f"  {run['state'].capitalize()}: {run['name']} (created {run['created']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
