"""End to end against a real local Prefect server, the way users run it.

``rltrader serve`` starts a server on a free port (temporary ``PREFECT_HOME``) and serves
the deployments; the tests then do what the UI does: run ``train-ppo``, read the
artifacts, look at the runs the scheduler created for ``performance-mode``, and retry a
flow run whose process was killed mid-iteration. What a person sees is checked in a real
headless browser (Debian's ``chromium``): the Deployments page and the training summary's
picture, with screenshots left in ``bench/out/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled
from processes import prefect_servers

from rltrader.config import load_config

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 150
RUN_TIMEOUT_S = 300
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = PROJECT_ROOT / "bench" / "out"


def _browser(url: str, profile: Path, *options: str) -> str:
    """Load ``url`` in headless Chromium (scripts run, 20 s of virtual time); its stdout (``--dump-dom``)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt install chromium); .ci/run installs it in CI")
    process = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1500,1100",
                                *options, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its renderer and zygote processes too
        except ProcessLookupError:
            pass
    return out


def _rendered_dom(url: str, profile: Path, *texts: str, tries: int = 3) -> str:
    """The DOM of ``url`` once it holds every one of ``texts`` (at most ``tries`` loads; the last DOM otherwise).

    The UI fetches an artifact from the API after its shell loads; Chromium's virtual time does not wait for a real
    request, so on a loaded machine (CI beside other work) a dump can hold the empty shell: load it again."""
    dom = ""
    for _ in range(tries):
        dom = _browser(url, profile, "--dump-dom")
        if all(text in dom for text in texts):
            break
    return dom


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """The ``rltrader serve`` process and a client of its server."""

    def __init__(self, process: subprocess.Popen[str], api_url: str, root: Path) -> None:
        self.process, self.api_url, self.root = process, api_url, root

    def client(self):
        return get_client(sync_client=True)

    def deployment(self, name: str) -> Any:
        with self.client() as client:
            return client.read_deployment_by_name(name)

    def run_and_wait(self, deployment: str, parameters: dict[str, Any]) -> Any:
        with self.client() as client:
            flow_run = client.create_flow_run_from_deployment(self.deployment(deployment).id, parameters=parameters)
        return self.wait(flow_run.id)

    def wait(self, flow_run_id, timeout: float = RUN_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                flow_run = client.read_flow_run(flow_run_id)
                if flow_run.state.is_final():
                    return flow_run
                time.sleep(0.5)
        raise AssertionError(f"flow run {flow_run_id} not finished after {timeout}s: {flow_run.state}")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
               PREFECT_RUNNER_POLL_FREQUENCY="2", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop(FAULT := "RLTRADER_FAIL_ONCE_AT_ITERATION", None)
    log = open(root / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "rltrader", "serve", "--port", str(port),
                                "--results_dir", str(root / "results"), "--settings_file",
                                str(root / "settings.json"), "--cache_dir", str(root / "cache")],
                               cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            served = Served(process, api_url, root)
            while True:
                assert process.poll() is None, (root / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (root / "serve.log").read_text()[-3000:]
                if "Prefect UI: http://127.0.0.1:" in (root / "serve.log").read_text():
                    try:
                        served.deployment("train-pipeline/train-ppo")
                        served.deployment("set-performance-mode/performance-mode")
                        served.deployment("walk-forward/walk-forward")
                        served.deployment("paper-trade/paper-trade")
                        served.deployment("retrain/retrain")
                        break
                    except Exception:  # noqa: BLE001 - not registered yet
                        pass
                time.sleep(1)
            yield served
    finally:
        # SIGTERM, as systemd or docker stop it: a SIGINT is ignored when the suite itself was started in the
        # background (the shell's rule for background jobs), and serve then outlived the wait, its server orphaned
        process.send_signal(signal.SIGTERM)
        stopped_in_time = True
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stopped_in_time = False
            process.kill()
            process.wait()
        time.sleep(0.5)
        leftover = prefect_servers(root / "prefect-home")
        for pid in leftover:  # a server outliving serve would outlive the suite too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        assert stopped_in_time and not leftover, f"serve stopped in time: {stopped_in_time}; left: {leftover}"
        assert FAULT


def _smoke(served: Served, results: Path, **extra: Any) -> dict[str, Any]:
    """train-ppo's parameters as the UI's form sends them: the deployment's request, fields edited."""
    request = served.deployment("train-pipeline/train-ppo").parameters["request"]
    return {"request": {**request, "profile": "smoke", "results_dir": str(results), **extra}}


def test_serve_prints_the_ui_address(served):
    assert f"Prefect UI: {served.api_url.removesuffix('/api')}" in (served.root / "serve.log").read_text()


def test_the_ui_on_a_port_other_than_4200_reaches_its_api_in_a_real_browser(served):
    """The UI asks /ui-settings for its API address; served on any port it must get that port's."""
    import urllib.request

    ui = served.api_url.removesuffix("/api")
    with urllib.request.urlopen(f"{ui}/ui-settings", timeout=10) as response:
        assert json.loads(response.read())["api_url"] == served.api_url
    dom = _browser(f"{ui}/deployments", served.root / "chromium", "--dump-dom")
    assert "Can't connect to Server API" not in dom
    for name in ("train-ppo", "performance-mode", "paper-trade"):
        assert name in dom, dom[-2000:]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _browser(f"{ui}/deployments", served.root / "chromium", f"--screenshot={SCREENSHOTS / 'prefect_ui_deployments.png'}")
    assert (SCREENSHOTS / "prefect_ui_deployments.png").stat().st_size > 10_000
    if shutil.which("ss"):  # the server listens where it says, on the loopback only
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, timeout=10).stdout
        (SCREENSHOTS / "serve_ss.txt").write_text(listening)
        port = served.api_url.rsplit(":", 1)[1].split("/")[0]
        assert f"127.0.0.1:{port} " in listening, listening


def test_train_ppo_runs_from_the_ui_and_publishes_artifacts(served):
    results = served.root / "ui-run"
    flow_run = served.run_and_wait("train-pipeline/train-ppo", _smoke(served, results))
    assert flow_run.state.is_completed(), flow_run.state.message
    summary = json.loads((results / "42" / "optimization_summary.json").read_text())
    assert summary["optimization_completed"] and len(summary["iterations"]) == 2
    with served.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    assert {artifact.key for artifact in artifacts} == {"training-progress", "training-iterations",
                                                         "training-summary", "training-report"}
    # in the browser: the summary artifact shows the test split's equity picture, not a link to a file
    [summary_artifact] = [artifact for artifact in artifacts if artifact.key == "training-summary"]
    page = f"{served.api_url.removesuffix('/api')}/artifacts/artifact/{summary_artifact.id}"
    dom = _rendered_dom(page, served.root / "chromium", '<img src="data:image/png;base64,', "Best model vs buy-and-hold")
    assert '<img src="data:image/png;base64,' in dom and "Best model vs buy-and-hold" in dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _browser(page, served.root / "chromium", "--window-size=1500,2200",
             f"--screenshot={SCREENSHOTS / 'prefect_ui_training_summary.png'}")
    assert (SCREENSHOTS / "prefect_ui_training_summary.png").stat().st_size > 50_000


def test_mode_schedules_create_runs_with_their_parameters(served):
    schedule = load_config().orchestration.mode_schedule
    deployment = served.deployment("set-performance-mode/performance-mode")
    wanted = {"performance": int(schedule.performance_cron.split()[1]), "quiet": int(schedule.quiet_cron.split()[1])}
    deadline = time.monotonic() + 60
    by_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
    with served.client() as client:
        while True:
            runs = client.read_flow_runs(deployment_filter=by_deployment)
            scheduled = [run for run in runs if run.state.is_scheduled()]
            if {run.parameters.get("mode") for run in scheduled} >= set(wanted) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert {run.parameters.get("mode") for run in scheduled} >= set(wanted), [r.parameters for r in runs]
    zone = ZoneInfo(schedule.timezone)
    for run in scheduled:
        local: datetime = run.expected_start_time.astimezone(zone)
        assert local.hour == wanted[run.parameters["mode"]] and local.minute == 0
        assert run.parameters["settings_file"] == str(served.root / "settings.json")


def test_mode_deployment_run_by_hand_switches_the_mode(served):
    from prefect.variables import Variable

    flow_run = served.run_and_wait("set-performance-mode/performance-mode", {"mode": "performance"})
    assert flow_run.state.is_completed(), flow_run.state.message
    assert json.loads((served.root / "settings.json").read_text()) == {"performance_mode": "performance"}
    assert Variable.get("rltrader_performance_mode") == "performance"


def test_a_killed_flow_run_retried_from_the_ui_skips_finished_iterations(served):
    results = served.root / "crash"
    run_dir = results / "42"
    parameters = _smoke(served, results, iterations=3, total_timesteps=8192, min_timesteps=4096,
                        early_stopping_patience=0)
    with served.client() as client:
        flow_run = client.create_flow_run_from_deployment(served.deployment("train-pipeline/train-ppo").id,
                                                          parameters=parameters)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (run_dir / "run_state.json").is_file() \
                or len(json.loads((run_dir / "run_state.json").read_text())["iterations"]) < 1 \
                or not list((run_dir / "checkpoints" / "iter_01").glob("step_*.json")):
            assert time.monotonic() < deadline and not client.read_flow_run(flow_run.id).state.is_final()
            time.sleep(0.2)
        finished = (run_dir / "iterations" / "iter_00" / "metrics.json").read_text()
        pid = json.loads((run_dir / "performance_mode.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)  # the flow run's process, mid-iteration 2
        crashed = served.wait(flow_run.id)
        assert crashed.state.type.value == "CRASHED", crashed.state
        # what the UI's Retry button does
        client.set_flow_run_state(flow_run.id, Scheduled(name="AwaitingRetry"), force=True)
    retried = served.wait(flow_run.id)
    assert retried.state.is_completed(), retried.state.message
    assert retried.run_count == 2
    assert (run_dir / "iterations" / "iter_00" / "metrics.json").read_text() == finished  # not retrained
    records = json.loads((run_dir / "run_state.json").read_text())["iterations"]
    assert [record["iteration"] for record in records] == [0, 1, 2]
    assert records[1]["resumed_at"] > 0  # iteration 2 went on from its checkpoint


def test_walk_forward_runs_from_the_ui_and_publishes_its_fold_table(served):
    deployment = served.deployment("walk-forward/walk-forward")
    results = served.root / "walk"
    request = {**deployment.parameters["request"], "profile": "smoke", "folds": 2, "name": "ui",
               "results_dir": str(results)}
    flow_run = served.run_and_wait("walk-forward/walk-forward", {"request": request})
    assert flow_run.state.is_completed(), flow_run.state.message
    summary = json.loads((results / "walkforward-ui" / "summary.json").read_text())
    assert [row["fold"] for row in summary["fold_table"]] == [1, 2]
    with served.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    keys = {artifact.key for artifact in artifacts}
    assert {"walkforward-ui-folds", "walkforward-ui-summary"} <= keys
    versions = [artifact for artifact in artifacts if artifact.key == "walkforward-ui-folds"]
    assert len(versions) == 2  # updated as each fold finished
    latest = max(versions, key=lambda artifact: artifact.created)
    assert [row["fold"] for row in json.loads(latest.data)] == [1, 2]  # the table as the UI shows it


def test_paper_trade_runs_from_the_ui_and_shows_its_account_picture(served):
    from rltrader.training.trainer import Trainer

    root = served.root / "paper-trade"
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(root / "cache"),
                                                                 "training.iterations": 1})
    Trainer(config, PROJECT_ROOT / "data" / "XAUUSDm_15min.csv", root / "run").run()
    deployment = served.deployment("paper-trade/paper-trade")
    assert [schedule.schedule.interval.total_seconds() for schedule in deployment.schedules] == [900.0]
    parameters = {**deployment.parameters, "bundle": str(root / "run" / "bundle"), "name": "ui",
                  "data_path": str(PROJECT_ROOT / "data" / "XAUUSDm_15min.csv"), "paper_dir": str(root / "paper"),
                  "start": "2024-03-25 00:00"}
    flow_run = served.run_and_wait("paper-trade/paper-trade", parameters)
    assert flow_run.state.is_completed(), flow_run.state.message
    ledger = (root / "paper" / "ui" / "ledger.csv").read_text().splitlines()
    assert ledger[1].startswith("2024-03-25 00:") and len(ledger) > 400  # the first bar on or after the start
    with served.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    [artifact] = [artifact for artifact in artifacts if artifact.key == "paper-ui"]
    page = f"{served.api_url.removesuffix('/api')}/artifacts/artifact/{artifact.id}"
    dom = _rendered_dom(page, served.root / "chromium", '<img src="data:image/png;base64,', "Paper account",
                        "buy and hold")
    assert '<img src="data:image/png;base64,' in dom and "Paper account" in dom and "buy and hold" in dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _browser(page, served.root / "chromium", "--window-size=1500,1400",
             f"--screenshot={SCREENSHOTS / 'prefect_ui_paper_trade.png'}")
    assert (SCREENSHOTS / "prefect_ui_paper_trade.png").stat().st_size > 50_000


def test_retrain_runs_from_the_ui_and_its_decision_is_readable_there(served):
    import pandas as pd

    from rltrader.data.known_answer import KnownAnswerMarket
    from rltrader.data.synthetic import write_market
    from rltrader.jobs.requests import RetrainRequest
    from rltrader.retraining.retrain import retrain

    root = served.root / "retrain"
    root.mkdir()
    write_market(KnownAnswerMarket(kind="time_of_day", bars=3000, seed=11, bar_minutes=60), root / "source.csv")
    bars = pd.read_csv(root / "source.csv")
    data = root / "tod.csv"
    bars.iloc[:2600].to_csv(data, index=False)
    fields = {"name": "ui-model", "data_path": str(data), "registry_dir": str(root / "registry"),
              "cache_dir": str(root / "cache"), "profile": "smoke", "train_bars": 1200, "validation_bars": 300,
              "holdout_bars": 200}
    assert retrain(RetrainRequest(**fields).to_spec()).kind == "promote"  # the first champion, trained here
    bars.iloc[:2800].to_csv(data, index=False)  # a week and more of new bars arrived
    deployment = served.deployment("retrain/retrain")
    nightly = load_config().retrain
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [(nightly.cron,
                                                                                      nightly.timezone)]
    flow_run = served.run_and_wait("retrain/retrain", {"request": {**deployment.parameters["request"], **fields}})
    assert flow_run.state.is_completed(), flow_run.state.message
    with served.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    by_key = {artifact.key: artifact for artifact in artifacts}
    table = json.loads(by_key["registry-ui-model"].data)
    assert [row["version"] for row in table] == [2, 1] and table[0]["decision"] in ("promote", "keep")
    page = f"{served.api_url.removesuffix('/api')}/artifacts/artifact/{by_key['retrain-ui-model'].id}"
    dom = _rendered_dom(page, served.root / "chromium", "Retrain of", "P(challenger better)", "Newey-West",
                        "buy and hold")
    assert "Retrain of" in dom and "P(challenger better)" in dom and "Newey-West" in dom and "buy and hold" in dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _browser(page, served.root / "chromium", "--window-size=1500,1200",
             f"--screenshot={SCREENSHOTS / 'prefect_ui_retrain.png'}")
    assert (SCREENSHOTS / "prefect_ui_retrain.png").stat().st_size > 30_000
