"""Finding processes by what they carry: the suite's leak check and the tests that stop things share this.

A process is found by its environment (a marker variable, or the ``PREFECT_HOME`` a test gave it) and its
command line, read from ``/proc`` (Linux; elsewhere nothing is found, and the checks pass vacuously).
"""

from __future__ import annotations

import os
from pathlib import Path

SERVER_COMMANDS = ("prefect.server.api.server:create_app", " server start")
"""How a Prefect server's command line reads: Prefect's temporary server (uvicorn) or ``prefect server start``."""


def processes_with(environment_entry: str) -> dict[int, str]:
    """Live processes (not this one, no zombies) whose environment holds ``NAME=value``: pid -> command line."""
    wanted = environment_entry.encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in environ and state != "Z":  # a zombie is dead, only not yet reaped
            found[int(entry.name)] = command
    return found


def is_prefect_server(command: str) -> bool:
    return any(part in command for part in SERVER_COMMANDS)


def prefect_servers(home: Path) -> dict[int, str]:
    """Prefect servers running with ``PREFECT_HOME=home``: pid -> command line."""
    return {pid: command for pid, command in processes_with(f"PREFECT_HOME={home}").items()
            if is_prefect_server(command)}
