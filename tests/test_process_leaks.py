"""The suite's own leak check: a process a test started that outlives the run is found by the run's marker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import _started_by_these_tests


def test_the_leak_check_finds_a_server_orphaned_by_a_test():
    """What the session fixture relies on: a server-like process started here, orphaned (its parent gone,
    as after a kill of a command alone), still carries the run's marker and is found by it."""
    launcher = ("import subprocess, sys\n"
                "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', 'server', 'start'],\n"
                "                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                "print(child.pid, flush=True)\n")
    orphan = int(subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True,
                                timeout=30).stdout.strip())
    try:
        environ = Path(f"/proc/{orphan}/environ").read_bytes().split(b"\0")
        carried = [item for item in environ if item.startswith(b"RLTRADER_TEST_SESSION=")]
        assert orphan in _started_by_these_tests(), (carried, os.environ.get("RLTRADER_TEST_SESSION"))
    finally:
        os.kill(orphan, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while orphan in _started_by_these_tests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert orphan not in _started_by_these_tests()
