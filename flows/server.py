"""Which Prefect server a command talks to, started and stopped by the command when it must be.

Every command that runs a flow talks to one API, chosen in this order:

1. ``PREFECT_API_URL``, when set (a server the user runs; it must answer);
2. a server already answering at ``orchestration.server_host:server_port`` (127.0.0.1:4200, where
   ``rltrader serve`` starts one), so runs started in a terminal show in the UI that is open, when its
   database is this command's (the server's ``PREFECT_HOME`` is the command's): a command run with
   another ``PREFECT_HOME`` (the test suite's temporary one) never writes into the user's database;
3. otherwise a temporary server, started here rather than by Prefect: Prefect's own would start
   inside the first flow call (after the imports, so nothing overlaps it), print a notice on every
   command, and die with the terminal's Ctrl-C before the flow could report how it ended. This one
   starts as soon as the input has been checked, so it comes up while torch and Prefect import; it
   has its own session (a Ctrl-C in the terminal does not reach it; the command stops it once the
   flow has recorded its end) and Linux's parent-death signal (a ``kill -9`` of the command takes it
   along). The command exports its address in ``PREFECT_API_URL``, so every worker process it
   starts reports to it instead of starting a server of its own.

Nothing here imports Prefect: the choice is made before Prefect is imported, because Prefect's
settings read ``PREFECT_API_URL`` once, at import.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rltrader.errors import UserInputError

SERVER_START_TIMEOUT_S = 90.0
"""A temporary server on a new ``PREFECT_HOME`` migrates its database first: about 20 s on two cores."""


def api_is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers ``/health`` at ``api_url`` within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def prefect_home() -> Path:
    """The ``PREFECT_HOME`` this process's Prefect uses (its database lives there unless configured elsewhere)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser().resolve()


def server_home(api_url: str, timeout: float = 2.0) -> Path | None:
    """The ``PREFECT_HOME`` of the server at ``api_url`` (its ``/admin/settings``); None if it does not say."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/admin/settings", timeout=timeout) as response:
            home = json.loads(response.read()).get("home")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    return Path(home).expanduser().resolve() if isinstance(home, str) and home else None


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """A cheap look before asking for ``/health``: nothing listening answers at once."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
"""Loaded before any fork: the child between fork and exec only calls into it."""


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGTERM when the command that started it dies."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


@dataclass
class Server:
    """The API a command talks to, and the server process when the command started it.

    :param api_url: the API's address, ``http://host:port/api``
    :param origin: where the address came from, as the command's first line says it
    :param process: the server this command started (None for a server someone else runs)
    :param log_path: that server's log, when it writes one
    """

    api_url: str
    origin: str = "PREFECT_API_URL"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _ready: bool = field(default=False, repr=False)
    _exported: list[str | None] = field(default_factory=list, repr=False)

    @property
    def ui_url(self) -> str:
        return self.api_url.rstrip("/").removesuffix("/api")

    @property
    def temporary(self) -> bool:
        return self.origin == "temporary"

    @property
    def name(self) -> str:
        """What the data report's last line calls it."""
        return "a temporary Prefect server" if self.temporary else f"the Prefect server at {self.ui_url}"

    def describe(self) -> str:
        """One line: which server the command uses, and what becomes of its runs."""
        if self.temporary:
            return (f"Prefect: a temporary server at {self.ui_url}, stopped at exit (runs stay in its database; "
                    "start `rltrader serve` or set PREFECT_API_URL to watch them in the UI)")
        return f"Prefect: the server at {self.ui_url} ({self.origin})"

    def export(self) -> None:
        """Name this API in ``PREFECT_API_URL`` until :meth:`stop` (which puts the previous value back)."""
        self._exported = [os.environ.get("PREFECT_API_URL")]
        os.environ["PREFECT_API_URL"] = self.api_url
        _reread_prefect_settings()

    def wait_until_ready(self, timeout: float = SERVER_START_TIMEOUT_S) -> None:
        """Block until the API answers; a server that exits or never answers is one line, and stopped."""
        if self._ready:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api_is_healthy(self.api_url, timeout=1.0):
                self._ready = True
                return
            if self.process is not None and self.process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise UserInputError(f"the Prefect server for {self.api_url} exited at start "
                                     f"(exit {self.process.returncode}){where}")
            time.sleep(0.1)
        self.stop()
        raise UserInputError(f"the Prefect server at {self.api_url} did not answer within {timeout:.0f} s"
                             + (f"; see {self.log_path}" if self.log_path else ""))

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server this command started, all of it (a server someone else runs is left alone).

        ``prefect server start`` runs uvicorn as a child process, which outlived a SIGTERM to the
        parent alone; the server has its own session, so its whole process group is signalled:
        SIGTERM, then SIGKILL for whatever is left after ``grace_s``.
        """
        if self._exported:
            previous = self._exported.pop()
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
            _reread_prefect_settings()  # a command run in a longer process (a test) leaves no stale address
        if self.process is None:
            return
        _drain_prefect_workers()  # the logs and events the runs sent, before their server goes
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        deadline = time.monotonic() + grace_s
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader, or the group never empties
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    self.process.poll()
                    return
                time.sleep(0.05)
            deadline = time.monotonic() + 5
        self.process.poll()


def _reread_prefect_settings() -> None:
    """Prefect reads its settings once, at import: where it is imported already, read them again."""
    if "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()


def _drain_prefect_workers(timeout: float = 2.0) -> None:
    """Send what Prefect's log and event workers still hold (at exit they would retry a stopped server).

    The drain runs in a thread of its own, waited for ``timeout`` seconds at most: after a signal the
    work that was interrupted may hold the workers' locks, and stopping must not wait on it."""
    if "prefect.events.worker" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    def drain() -> None:
        for worker in (APILogWorker, EventsWorker):
            try:
                worker.drain_all(timeout=timeout / 2)
            except Exception:  # noqa: BLE001 - what could not be sent is lost with the temporary server anyway
                pass

    drainer = threading.Thread(target=drain, name="rltrader-drain-prefect", daemon=True)
    drainer.start()
    drainer.join(timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_temporary_server() -> Server:
    """Start Prefect's API (no UI) on a free local port, as Prefect's ephemeral server runs it; returns at once.

    The database is the one in ``PREFECT_HOME``, so runs stay readable after the command ends."""
    port = _free_port()
    app_dir = Path(importlib.util.find_spec("prefect").origin).parent.parent  # type: ignore[arg-type]
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
         "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    return Server(f"http://127.0.0.1:{port}/api", "temporary", process)


def _configured_server(instead: str) -> Server | None:
    """The server ``PREFECT_API_URL`` names, if set; one that does not answer is a one-line error."""
    configured = os.environ.get("PREFECT_API_URL")
    if not configured:
        return None
    if not api_is_healthy(configured):
        raise UserInputError(f"PREFECT_API_URL={configured}: no Prefect server answers there; start it, "
                             f"or unset PREFECT_API_URL to let {instead}")
    return Server(configured, "PREFECT_API_URL", _ready=True)


def ensure_server(host: str, port: int) -> Server:
    """``rltrader serve``'s server: the user's (``PREFECT_API_URL``), one already on ``host:port``, or a new one
    there with the UI, kept until serving stops."""
    if (configured := _configured_server("rltrader serve start one")) is not None:
        configured.origin = "already running, PREFECT_API_URL"
        return configured
    api_url = f"http://{host}:{port}/api"
    if api_is_healthy(api_url):
        return Server(api_url, "already running", _ready=True)
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "rltrader-server.log"
    env = {**os.environ, **server_environment(host, port)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host,
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(api_url, "started by rltrader", process, log_path)
    try:
        server.wait_until_ready()
    except UserInputError:
        server.stop()
        raise UserInputError(f"the Prefect server on {host}:{port} did not start (is the port taken?); "
                             f"see {log_path}, or pass --port") from None
    return server


def server_environment(host: str, port: int) -> dict[str, str]:
    """What a server started on ``host:port`` needs to serve a UI that can reach it.

    The UI asks ``/ui-settings`` for its API address, which Prefect builds from
    ``PREFECT_SERVER_API_HOST``/``PORT`` (default 4200), not from ``prefect server start --port``:
    a server on any other port served a UI that called 127.0.0.1:4200 and showed "Can't connect
    to Server API". The address is therefore set explicitly, with the host and port to match."""
    return {"PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_UI_API_URL": f"http://{host}:{port}/api", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false"}


def command_server(host: str, port: int) -> Server:
    """The server a command's flows report to (see the module docstring), exported in ``PREFECT_API_URL``.

    :param host: where ``rltrader serve`` runs its server (``orchestration.server_host``)
    :param port: its port (``orchestration.server_port``)
    """
    if (configured := _configured_server("rltrader start a temporary one")) is not None:
        return configured
    if "prefect.settings" in sys.modules:  # called in a process that set Prefect up already (a test harness)
        from prefect.settings import PREFECT_API_URL

        if (in_force := PREFECT_API_URL.value()) and api_is_healthy(in_force, timeout=1.0):
            return Server(in_force, "the Prefect settings in force", _ready=True)
    served = f"http://{host}:{port}/api"
    if _port_open(host, port) and api_is_healthy(served, timeout=1.0) and \
            server_home(served) in (None, prefect_home()):
        server = Server(served, f"already running on {host}:{port}", _ready=True)
    else:  # none there, or one whose database is another PREFECT_HOME's
        server = start_temporary_server()
    server.export()  # Prefect reads it at import; worker processes inherit it
    return server


def pin_worker_api(api_url: str) -> None:
    """Make this process (a Dask worker) report to ``api_url`` and never start a Prefect server of its own.

    A worker that runs a Prefect task, or a thread of one that sends its events, outside the flow's
    settings would otherwise start a temporary server, which outlives the worker."""
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["PREFECT_SERVER_EPHEMERAL_ENABLED"] = "false"
    _reread_prefect_settings()  # imported by an earlier run on this worker
