"""What reaches a person's terminal at the default verbosity: rltrader's own lines, not a library's warnings."""

from __future__ import annotations

import logging


def _record(name: str, level: int, message: str = "m") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_a_librarys_warning_stays_off_the_console_and_rltraders_own_lines_pass():
    from rltrader.app.orchestration import _OwnWarningsOnly

    keep = _OwnWarningsOnly().filter
    assert not keep(_record("prefect.tasks", logging.WARNING, "Both `cache_policy` and `cache_key_fn` are set"))
    assert not keep(_record("py.warnings", logging.WARNING))
    assert keep(_record("rltrader.training.trainer", logging.WARNING))  # the product's own warnings
    assert keep(_record("prefect.flow_runs", logging.WARNING))  # what a flow logs for rltrader
    assert keep(_record("prefect.flow_runs", logging.INFO, "Fold 1/3 seed 42 ..."))  # progress lines
    assert keep(_record("prefect.engine", logging.ERROR))  # every error


def test_the_preprocess_tasks_carry_no_options_prefect_warns_about(caplog, tmp_path):
    """Benchmark mode's original method preprocesses without Prefect's cache: that task is built without a cache
    key function, so Prefect has nothing to warn about (it printed two WARNING lines at every start)."""
    import flows  # noqa: F401 - Prefect's environment first
    from rltrader.config import Config
    from tasks.preprocess import preprocessing_task

    config = Config().with_overrides({"cache.dir": str(tmp_path / "cache")})
    with caplog.at_level(logging.WARNING):
        cached = preprocessing_task("data/XAUUSDm_15min.csv", config, use_cache=True)
        uncached = preprocessing_task("data/XAUUSDm_15min.csv", config, use_cache=False)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("prefect")] == []
    assert uncached.cache_key_fn is None and not uncached.persist_result and cached.cache_key_fn is not None
