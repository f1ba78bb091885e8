"""Which Prefect server a command reports to: ``PREFECT_API_URL``, else the one serving on the configured
address, else a temporary one of its own; the choice is exported for worker processes and undone at stop."""

from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from flows.server import command_server, pin_worker_api
from rltrader.errors import UserInputError


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers ``/api/health`` as a Prefect server does; nothing else."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serving():
    """A stand-in for the server ``rltrader serve`` runs: its host and port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def _serving_home(home: Path):
    """A stand-in for a server whose database is in ``home``: answers ``/api/admin/settings`` as Prefect does."""

    class _WithSettings(_Health):
        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/api/admin/settings":
                return super().do_GET()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps({"home": str(home), "api": {"url": None}}).encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WithSettings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def no_prefect_settings(monkeypatch):
    """As in a fresh command: no PREFECT_API_URL, and Prefect's settings not consulted."""
    import sys

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delitem(sys.modules, "prefect.settings", raising=False)


def test_a_server_answering_on_the_configured_address_is_used_and_named(serving, no_prefect_settings):
    host, port = serving
    server = command_server(host, port)
    try:
        assert server.api_url == f"http://{host}:{port}/api" and server.process is None
        assert os.environ["PREFECT_API_URL"] == server.api_url  # what worker processes inherit
        assert server.describe() == f"Prefect: the server at http://{host}:{port} (already running on {host}:{port})"
    finally:
        server.stop()
    assert "PREFECT_API_URL" not in os.environ  # put back as it was


@pytest.mark.parametrize(("served_home", "used"), [("users", False), ("mine", True)])
def test_a_server_on_the_configured_address_whose_database_is_another_homes_is_not_reported_to(
        served_home, used, tmp_path, no_prefect_settings, monkeypatch):
    """The user's ``rltrader serve`` on 4200 keeps its runs in their home: a command with another
    ``PREFECT_HOME`` (this suite's) starts a temporary server on its own home instead of writing into theirs."""
    import flows.server

    started: list[str] = []
    monkeypatch.setattr(flows.server, "start_temporary_server",
                        lambda: started.append("temporary") or flows.server.Server("http://127.0.0.1:1/api", "temporary"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    served = _serving_home(tmp_path / served_home)
    host, port = served.server_address
    try:
        server = command_server(host, port)
        server.stop()
    finally:
        served.shutdown()
        served.server_close()
    assert (server.api_url == f"http://{host}:{port}/api") is used, server
    assert started == ([] if used else ["temporary"])


def test_prefect_api_url_wins_and_a_dead_one_is_one_line(serving, monkeypatch):
    host, port = serving
    monkeypatch.setenv("PREFECT_API_URL", f"http://{host}:{port}/api")
    server = command_server("127.0.0.1", 1)
    assert server.origin == "PREFECT_API_URL" and server.process is None
    server.stop()
    assert os.environ["PREFECT_API_URL"] == f"http://{host}:{port}/api"  # the user's setting is left alone
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(UserInputError, match=r"^PREFECT_API_URL=http://127.0.0.1:9/api: no Prefect server answers "
                                             r"there; start it, or unset PREFECT_API_URL"):
        command_server("127.0.0.1", 1)


def test_a_worker_is_pinned_to_the_flows_api_and_can_start_no_server(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_ENABLED", raising=False)
    pin_worker_api("http://127.0.0.1:4321/api")
    try:
        import prefect.context

        settings = prefect.context.GLOBAL_SETTINGS_CONTEXT.settings  # what a worker's own threads read
        assert settings.api.url == "http://127.0.0.1:4321/api"
        assert settings.server.ephemeral.enabled is False
    finally:  # os.environ itself: monkeypatch would put back the values it saw set here at teardown
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("PREFECT_SERVER_EPHEMERAL_ENABLED", None)
        import prefect.context

        prefect.context.refresh_global_settings_context()


@pytest.mark.slow
def test_the_temporary_server_dies_with_the_command(tmp_path):
    """Started with Linux's parent-death signal: a ``kill -9`` of the command alone takes it along."""
    if not Path("/proc").is_dir():
        pytest.skip("Linux only")
    import signal
    import subprocess
    import sys
    import time

    script = ("import sys, time\nfrom flows.server import start_temporary_server\n"
              "server = start_temporary_server()\nprint(server.process.pid, flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home")}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=Path(__file__).resolve().parent.parent)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return  # dead, waiting to be reaped by init
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the temporary server outlived the command that started it")
