"""Shared fixtures. Tests read only data shipped in the project (data/)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "rltrader")  # before any Prefect import, as the CLI does
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from rltrader.config import Config  # noqa: E402
from rltrader.data import load_bars  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"


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


def cache_is_untouched(cache_dir: Path) -> bool:
    return not cache_dir.exists() or not any(cache_dir.rglob("*"))


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory):
    """The shipped sample, preprocessed once for the session into a private cache."""
    from rltrader.preprocessing import preprocess

    session_config = Config().with_overrides({"cache.dir": str(tmp_path_factory.mktemp("cache"))})
    return preprocess(SAMPLE_CSV, session_config, use_cache=True), session_config


@pytest.fixture(scope="session")
def prepared_market(prepared_sample):
    from rltrader.env import MarketData

    prepared, session_config = prepared_sample
    return MarketData.from_prepared(prepared, session_config)
