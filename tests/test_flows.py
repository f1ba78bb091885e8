"""The Prefect pipeline on the session's test server: results, artifacts, caching, retries.

Budgets are the ``smoke`` profile's (two iterations of about 2,000 timesteps), so a flow
run takes seconds; assertions read what Prefect recorded (task states, artifacts) and
what the run wrote to disk.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)

from flows.mode import MODE_VARIABLE, set_performance_mode
from flows.train import train_pipeline
from rltrader.config import DEFAULT_CONFIG_PATH
from rltrader.jobs.requests import TrainRequest
from rltrader.runtime.faults import FAULT_VARIABLE

pytestmark = pytest.mark.usefixtures("prefect_harness")

SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv")


@pytest.fixture(scope="module")
def fast_retry_config(tmp_path_factory) -> str:
    """The shipped config with a one-second retry delay (the default waits 10 s, then 60 s)."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    raw["orchestration"]["retry_delay_seconds"] = [1]
    path = tmp_path_factory.mktemp("flow-config") / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def flow_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("flow-cache"))


def _run(tmp_path: Path, cache: str, **parameters: Any):
    """Run the pipeline on the smoke profile; returns its final state (never raises)."""
    defaults = {"data_path": SAMPLE, "profile": "smoke", "results_dir": str(tmp_path / "results"),
                "settings_file": str(tmp_path / "settings.json"), "cache_dir": cache}
    return train_pipeline(TrainRequest(**{**defaults, **parameters}), return_state=True)


def _task_runs(flow_run_id) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _state_names(task_run) -> list[str]:
    with get_client(sync_client=True) as client:
        return [state.name for state in sorted(client.read_task_run_states(task_run.id), key=lambda s: s.timestamp)]


def test_pipeline_writes_results_and_artifacts(tmp_path, flow_cache):
    state = _run(tmp_path, flow_cache)
    assert state.is_completed(), state.message
    summary = state.result()
    run_dir = tmp_path / "results" / "42"
    assert json.loads((run_dir / "optimization_summary.json").read_text())["total_timesteps"] == \
        summary["total_timesteps"] > 0
    assert (run_dir / "best_model.zip").is_file() and (run_dir / "report" / "report.md").is_file()
    assert len(json.loads((run_dir / "run_state.json").read_text())["iterations"]) == 2
    names = {run.name for run in _task_runs(state.state_details.flow_run_id)}
    assert {"iteration 1", "iteration 2", "final report"} <= names

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    by_key = {artifact.key: artifact for artifact in sorted(artifacts, key=lambda artifact: artifact.created)}
    assert set(by_key) == {"training-progress", "training-iterations", "training-summary", "training-report"}
    assert float(by_key["training-progress"].data) == 100.0
    table = json.loads(by_key["training-iterations"].data)
    assert [row["iteration"] for row in table] == [1, 2]
    assert table[0]["mode"] == "quiet" and table[1]["warm_start"] is True
    assert table[0]["timesteps"] == summary["iterations"][0]["timesteps"]
    assert "buy-and-hold" in by_key["training-summary"].data.lower()
    assert f"{summary['total_speedup_achieved']:.2f}x" in by_key["training-summary"].data
    assert "Account USD 10,000 trading XAUUSD" in by_key["training-summary"].data
    # the pictures travel inside the artifacts, as the UI renders them, not as local file links
    test_png = base64.b64encode((run_dir / "report" / "test" / "equity.png").read_bytes()).decode()
    validation_png = base64.b64encode((run_dir / "report" / "validation" / "equity.png").read_bytes()).decode()
    assert f"![test equity](data:image/png;base64,{test_png})" in by_key["training-summary"].data
    assert "Speedup basis: the original method's fixed budget at" in by_key["training-summary"].data
    report = by_key["training-report"].data
    assert f"(data:image/png;base64,{validation_png})" in report and f"(data:image/png;base64,{test_png})" in report
    assert "equity.png)" not in report and str(run_dir / "report") in report

    # the trainer's own log lines (rltrader logger, no Prefect import there) reach the run's logs. Prefect ships
    # them in batches from a background worker, so under load the last ones can land after the flow returned: read
    # until they are there (30 s at most), every page of them
    deadline, messages = time.monotonic() + 30, []
    with get_client(sync_client=True) as client:
        while not any(message.startswith("Iteration 1/2 [explore] done:") for message in messages) \
                and time.monotonic() < deadline:
            logs, offset = [], 0
            while page := client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(
                    any_=[state.state_details.flow_run_id])), limit=200, offset=offset):
                logs, offset = logs + page, offset + len(page)
            messages = [log.message for log in logs if log.name.startswith("rltrader")]
            time.sleep(0.5)
    assert any(message.startswith("Iteration 1/2 [explore] done:") for message in messages), messages[:5]


def test_preprocessing_is_a_cache_hit_on_the_second_run(tmp_path, flow_cache):
    first = _run(tmp_path / "a", flow_cache, iterations=1)
    second = _run(tmp_path / "b", flow_cache, iterations=1)
    assert first.is_completed() and second.is_completed()

    def preprocess_state(state) -> str:
        [run] = [run for run in _task_runs(state.state_details.flow_run_id) if run.name.startswith("preprocess")]
        return run.state.name

    assert preprocess_state(second) == "Cached"


def test_injected_failure_is_retried_and_resumes_from_its_checkpoint(tmp_path, flow_cache, fast_retry_config,
                                                                      monkeypatch, caplog):
    monkeypatch.setenv(FAULT_VARIABLE, "2")
    state = _run(tmp_path, flow_cache, config=fast_retry_config, early_stopping_patience=0)
    assert state.is_completed(), state.message
    [second] = [run for run in _task_runs(state.state_details.flow_run_id) if run.name == "iteration 2"]
    history = _state_names(second)
    assert history.count("Running") + history.count("Retrying") == 2, history
    assert "AwaitingRetry" in history and history[-1] == "Completed", history
    assert second.run_count == 2
    record = json.loads((tmp_path / "results" / "42" / "run_state.json").read_text())["iterations"][1]
    assert record["resumed_at"] == 512  # the smoke profile checkpoints every 512 timesteps
    assert "Iteration 2 resumes from its checkpoint at 512 timesteps" in caplog.text


def test_data_and_config_errors_fail_clearly_without_retries(tmp_path, flow_cache, fast_retry_config):
    bad = tmp_path / "bars.csv"
    bad.write_text("time,open,high,low,close\n2024-01-01 00:00,1,2,0.5,1.5\n2024-01-01 00:15,1,x,0.5,1.5\n")
    state = _run(tmp_path / "data", flow_cache, data_path=str(bad), config=fast_retry_config)
    assert state.is_failed()
    assert str(bad) in state.message and "\n" not in state.message.split(": ", 1)[1].strip()

    # a results directory holding another experiment is a user error inside the training task
    assert _run(tmp_path / "other", flow_cache, iterations=1, seed=7).is_completed()
    clash = _run(tmp_path / "other", flow_cache, iterations=2, seed=7, config=fast_retry_config,
                 warm_start=False)
    assert clash.is_failed() and "holds a run with other settings" in clash.message
    [training] = [run for run in _task_runs(clash.state_details.flow_run_id) if run.name == "iteration 2"]
    assert _state_names(training) == ["Pending", "Running", "Failed"]


def test_mode_flow_writes_the_settings_file_and_the_variable(tmp_path):
    from prefect.variables import Variable

    settings = tmp_path / "settings.json"
    assert set_performance_mode("performance", settings_file=str(settings)) == "performance"
    assert json.loads(settings.read_text()) == {"performance_mode": "performance"}
    assert Variable.get(MODE_VARIABLE) == "performance"
    set_performance_mode("quiet", settings_file=str(settings))
    assert Variable.get(MODE_VARIABLE) == "quiet"
    assert json.loads(settings.read_text()) == {"performance_mode": "quiet"}
