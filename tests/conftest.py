"""Shared fixtures. Tests read only data shipped in the project (data/).

The tests keep out of the user's Prefect: every test, and every process a test starts (they inherit
the environment), uses a temporary ``PREFECT_HOME`` made for this run (its database, results and
profiles), with no ``PREFECT_API_URL`` or profile of the user's; a command finds the user's own
server on 127.0.0.1:4200 but does not report to it, since that server's home is not this one
(:func:`flows.server.command_server`). ``tests/test_prefect_home.py`` shows the user's home untouched.

Every process the tests start inherits ``RLTRADER_TEST_SESSION``; at the end of the run,
any Prefect server (or ``rltrader`` command) carrying it that is still alive has outlived
the test that started it: it is killed and the run fails, naming it. The original
method's throughput calibration is shared by the whole run (one directory, removed after).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

if "RLTRADER_TEST_PREFECT_HOME" not in os.environ:  # once per run: a second import of this file keeps it
    os.environ["RLTRADER_TEST_PREFECT_HOME"] = tempfile.mkdtemp(prefix="rltrader-test-prefect-home-")
    atexit.register(shutil.rmtree, os.environ["RLTRADER_TEST_PREFECT_HOME"], ignore_errors=True)  # after Prefect's own
os.environ["PREFECT_HOME"] = os.environ["RLTRADER_TEST_PREFECT_HOME"]  # before any Prefect import
for _users_setting in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE"):
    os.environ.pop(_users_setting, None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rltrader")  # before any Prefect import, as the CLI does
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# setdefault: a second import of this file (a spawned worker, another module name) keeps the run's marker
os.environ.setdefault("RLTRADER_TEST_SESSION", uuid.uuid4().hex)
CALIBRATION_DIR = tempfile.mkdtemp(prefix="rltrader-calibration-")
os.environ["RLTRADER_CALIBRATION_DIR"] = CALIBRATION_DIR  # measured once per run, not once per test

from processes import is_prefect_server, processes_with  # noqa: E402

from rltrader.config import Config  # noqa: E402
from rltrader.data import load_bars  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"


def _started_by_these_tests() -> dict[int, str]:
    """Live Prefect servers and rltrader commands that carry this run's marker: pid -> command line."""
    marked = processes_with(f"RLTRADER_TEST_SESSION={os.environ['RLTRADER_TEST_SESSION']}")
    return {pid: command for pid, command in marked.items()
            if is_prefect_server(command) or "-m rltrader" in command or "bin/rltrader" in command}


def pytest_collection_modifyitems(config, items):
    """A test that needs a Prefect server (the ``prefect_harness`` fixture) is slow: the quick tier,
    ``pytest -m "not slow"``, starts no server."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests():
    """Fails the run if a Prefect server (or rltrader command) started by a test is alive at the end."""
    yield
    deadline = time.monotonic() + 20  # servers being stopped get their grace period
    while (leaked := _started_by_these_tests()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(CALIBRATION_DIR, ignore_errors=True)
    if leaked:
        pytest.fail("processes started by the tests outlived them (now killed): "
                    + "; ".join(f"pid {pid}: {command[:160]}" for pid, command in leaked.items()), pytrace=False)


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def canonical_bars() -> pd.DataFrame:
    """The shipped real bars as the loader reads them: the reference every format must match."""
    return load_bars(SAMPLE_CSV).bars


@pytest.fixture(scope="session")
def raw_sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_CSV)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def config(cache_dir: Path) -> Config:
    return Config().with_overrides({"cache.dir": str(cache_dir)})


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole run (it costs 10-15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def without_spread(path: Path) -> Path:
    """The shipped sample without its spread column, written to ``path``."""
    header, *rows = SAMPLE_CSV.read_text().splitlines()
    column = header.split(",").index("spread")
    path.write_text("\n".join(",".join(field for i, field in enumerate(line.split(",")) if i != column)
                              for line in [header, *rows]) + "\n")
    return path


def cache_is_untouched(cache_dir: Path) -> bool:
    return not cache_dir.exists() or not any(cache_dir.rglob("*"))


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory):
    """The shipped sample, preprocessed once for the session into a private cache."""
    from rltrader.features.preparation import preprocess

    session_config = Config().with_overrides({"cache.dir": str(tmp_path_factory.mktemp("cache"))})
    return preprocess(SAMPLE_CSV, session_config, use_cache=True), session_config


@pytest.fixture(scope="session")
def prepared_market(prepared_sample):
    from rltrader.env import MarketData

    prepared, session_config = prepared_sample
    return MarketData.from_prepared(prepared, session_config)
