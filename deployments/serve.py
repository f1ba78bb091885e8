"""``rltrader serve``: a local Prefect server if none runs, the deployments, and the UI address.

- ``train-ppo``: the training pipeline, run from the UI's "Run" button; its one
  parameter, the training request, is a form there (every field of ``rltrader train``);
- ``performance-mode``: the mode flow on two cron schedules, performance in the evening
  and quiet in the morning, from ``orchestration.mode_schedule`` in the config, the mode
  set per schedule;
- ``paper-trade``: a bundle (or a registry model's champion) paper-trades the new bars of a bar
  file every few minutes (an interval schedule), its account and picture on the Artifacts page;
- ``retrain``: nightly after performance mode starts (``retrain.cron``), a challenger trained on
  the latest bars replaces the model's champion only on evidence; the decision on the run's page,
  the registry on the Artifacts page.

With ``PREFECT_API_URL`` set, that server is used; otherwise a server is started on
``orchestration.server_host:server_port`` (127.0.0.1:4200) unless one already answers
there, and stopped again when serving stops (Ctrl-C). Flow runs execute in
subprocesses of this command, from the project root, so the deployments' default paths
are made absolute first.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.server import ensure_server
from rltrader.config import Config
from rltrader.errors import UserInputError
from rltrader.jobs.requests import TrainRequest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRAIN_DEPLOYMENT = "train-ppo"
MODE_DEPLOYMENT = "performance-mode"
TUNE_DEPLOYMENT = "tune"
WALK_FORWARD_DEPLOYMENT = "walk-forward"
PAPER_DEPLOYMENT = "paper-trade"
RETRAIN_DEPLOYMENT = "retrain"


class PaperDefaults(BaseModel):
    """What a ``paper-trade`` run trades unless the UI says otherwise, and how often it runs.

    :param bundle: the model bundle (default: the default seed's run, ``results/42/bundle``)
    :param data_path: the bar file a terminal export appends to
    :param name: the paper account
    :param start: a new account's first decision bar (None: the newest bar when it opens)
    :param every_minutes: minutes between scheduled runs
    :param model: follow this registry model's champion instead of ``bundle``
    :param stand_aside: with ``model``, stand aside (flat) after a break alarm until a retrain has the evidence
        (``rltrader paper --stand_aside``); None: the account's setting
    """

    model_config = ConfigDict(frozen=True)

    bundle: Path
    data_path: Path
    name: str = "demo"
    start: str | None = None
    every_minutes: float = 15.0
    model: str | None = None
    stand_aside: bool | None = None


def default_request(config_path: Path | None, data_path: Path, results_dir: Path, settings_file: Path,
                    cache_dir: Path | None = None) -> TrainRequest:
    """What a ``train-ppo`` run trains unless the UI's form says otherwise."""
    return TrainRequest(config=str(config_path) if config_path else None, data_path=str(data_path),
                        results_dir=str(results_dir), settings_file=str(settings_file),
                        cache_dir=str(cache_dir) if cache_dir else None)


def build_deployments(config: Config, config_path: Path | None, data_path: Path, results_dir: Path,
                      settings_file: Path, cache_dir: Path | None = None,
                      paper: PaperDefaults | None = None, retrain_name: str | None = None) -> list[Any]:
    """The six deployments; pass absolute paths (flow runs may start in another directory).

    :param retrain_name: the model the ``retrain`` deployment keeps current (default: the bar file's stem)
    """
    from datetime import timedelta

    from prefect.schedules import Cron, Interval

    from flows.mode import set_performance_mode
    from flows.paper import paper_trade
    from flows.retrain import retrain_model
    from flows.train import train_pipeline
    from flows.tune import tune_study
    from flows.walkforward import walk_forward
    from rltrader.jobs.requests import RetrainRequest, TuneRequest, WalkForwardRequest

    schedule = config.orchestration.mode_schedule
    common = {"config": str(config_path) if config_path else None}
    train = train_pipeline.to_deployment(
        name=TRAIN_DEPLOYMENT,
        description="Train PPO agents iteratively and report the best against buy-and-hold. "
                    "Edit the parameters to change data, seed, budget or optimizations.",
        parameters={"request": default_request(config_path, data_path, results_dir, settings_file,
                                               cache_dir).model_dump(mode="json", exclude_defaults=True)},
        tags=["rltrader", "training"],
    )
    mode = set_performance_mode.to_deployment(
        name=MODE_DEPLOYMENT,
        description=f"Performance mode at '{schedule.performance_cron}', quiet at '{schedule.quiet_cron}' "
                    f"({schedule.timezone}); run it by hand to switch now.",
        parameters={**common, "settings_file": str(settings_file)},
        schedules=[Cron(schedule.performance_cron, timezone=schedule.timezone, parameters={"mode": "performance"},
                        slug="evening-performance"),
                   Cron(schedule.quiet_cron, timezone=schedule.timezone, parameters={"mode": "quiet"},
                        slug="morning-quiet")],
        tags=["rltrader", "performance-mode"],
    )
    tune_request = TuneRequest(config=common["config"], data_path=str(data_path), results_dir=str(results_dir),
                               settings_file=str(settings_file), cache_dir=str(cache_dir) if cache_dir else None)
    tune = tune_study.to_deployment(
        name=TUNE_DEPLOYMENT,
        description="Optuna search over tune.space (TPE, median pruning) on validation only; the best trial is "
                    "written as a config file for train-ppo. Re-run with the same name to resume.",
        parameters={"request": tune_request.model_dump(mode="json", exclude_defaults=True)},
        tags=["rltrader", "tuning"],
    )
    walk_request = WalkForwardRequest(**tune_request.model_dump(include={"config", "data_path", "results_dir",
                                                                         "settings_file", "cache_dir"}))
    walk = walk_forward.to_deployment(
        name=WALK_FORWARD_DEPLOYMENT,
        description="Walk-forward analysis: a training run per fold and seed (rolling or anchored windows, "
                    "walk_forward: in the config), each fold's best model tested once on the next period, the test "
                    "windows stitched into one out-of-sample curve against buy-and-hold. Re-run to resume.",
        parameters={"request": walk_request.model_dump(mode="json", exclude_defaults=True)},
        tags=["rltrader", "walk-forward"],
    )
    paper = paper or PaperDefaults(bundle=results_dir / str(config.training.seed) / "bundle", data_path=data_path)
    paper_deployment = paper_trade.to_deployment(
        name=PAPER_DEPLOYMENT,
        description=f"Paper-trade a model bundle on the new bars of a bar file, every {paper.every_minutes:g} minutes: "
                    "each closed bar decided, filled at the next open with the backtest's ledger; the account "
                    "against buy-and-hold on the Artifacts page (paper-<name>). `rltrader paper` shares the account.",
        parameters={"bundle": None if paper.model else str(paper.bundle), "data_path": str(paper.data_path),
                    "name": paper.name, "paper_dir": str(results_dir / "paper"), "start": paper.start,
                    "model": paper.model, "registry_dir": str(results_dir / "registry"),
                    "stand_aside": paper.stand_aside},
        schedules=[Interval(timedelta(minutes=paper.every_minutes), slug="paper-interval")],
        tags=["rltrader", "paper-trading"],
    )
    retrain_request = RetrainRequest(name=retrain_name or default_model_name(data_path),
                                     **tune_request.model_dump(include={"config", "data_path", "results_dir",
                                                                        "settings_file", "cache_dir"}))
    nightly = config.retrain
    retrain = retrain_model.to_deployment(
        name=RETRAIN_DEPLOYMENT,
        description=f"Nightly at '{nightly.cron}' ({nightly.timezone}), after performance mode starts: train a "
                    f"challenger on the latest bars ({nightly.start} start), score it and the champion on a recent "
                    "held-out window with the same costs, promote it only when a paired test gives P(better) >= "
                    f"{nightly.promote_probability:g} and its drawdown is within {nightly.drawdown_tolerance:g}. "
                    "The decision is on the run's page, the registry on the Artifacts page (registry-<name>).",
        parameters={"request": retrain_request.model_dump(mode="json", exclude_defaults=True)},
        schedules=[Cron(nightly.cron, timezone=nightly.timezone, slug="nightly-retrain")],
        tags=["rltrader", "retraining"],
    )
    return [train, mode, tune, walk, paper_deployment, retrain]


def default_model_name(data_path: Path) -> str:
    """The registry name of a bar file's model: its stem in lower case (``XAUUSD_H1_2016_2026.csv``:
    ``xauusd_h1_2016_2026``)."""
    return "".join(char if char.isalnum() or char in "._-" else "-" for char in data_path.stem.lower())


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def serve_deployments(config: Config, config_path: Path | None, data_path: Path, results_dir: Path,
                      settings_file: Path, host: str | None = None, port: int | None = None,
                      cache_dir: Path | None = None, paper: PaperDefaults | None = None,
                      retrain_name: str | None = None) -> int:
    """Start or find the server, serve both deployments until interrupted; stop what was started."""
    config_path = config_path.resolve() if config_path else None
    cache_dir = cache_dir.resolve() if cache_dir else None
    data_path, results_dir, settings_file = data_path.resolve(), results_dir.resolve(), settings_file.resolve()
    if not data_path.is_file():
        raise UserInputError(f"{data_path}: bar file not found; pass --data_path (the train-ppo default)")
    server = ensure_server(host or config.orchestration.server_host, port or config.orchestration.server_port)
    os.environ["PREFECT_API_URL"] = server.api_url  # before Prefect is imported: its settings read this
    _stop_on_sigterm()
    try:
        os.chdir(PROJECT_ROOT)  # entrypoints (flows/train.py, flows/mode.py) are relative to here
        if paper is not None:
            paper = paper.model_copy(update={"bundle": paper.bundle.resolve(), "data_path": paper.data_path.resolve()})
        deployments = build_deployments(config, config_path, data_path, results_dir, settings_file, cache_dir, paper,
                                        retrain_name)
        schedule = config.orchestration.mode_schedule
        print(f"Prefect UI: {server.ui_url}  (server {server.origin}"
              + (f", log {server.log_path})" if server.log_path else ")"), flush=True)
        print(f"Deployments: train-pipeline/{TRAIN_DEPLOYMENT} (Run it from the UI), set-performance-mode/"
              f"{MODE_DEPLOYMENT} (performance at '{schedule.performance_cron}', quiet at '{schedule.quiet_cron}', "
              f"{schedule.timezone}), tune/{TUNE_DEPLOYMENT} (an Optuna search), walk-forward/"
              f"{WALK_FORWARD_DEPLOYMENT} (folds x seeds, stitched out-of-sample), paper-trade/{PAPER_DEPLOYMENT} "
              f"(a bundle on new bars, every {(paper.every_minutes if paper else 15):g} min), retrain/"
              f"{RETRAIN_DEPLOYMENT} (nightly at '{config.retrain.cron}', {config.retrain.timezone}: a challenger "
              "promoted only on evidence). Ctrl-C stops serving.",
              flush=True)
        from prefect import serve

        serve(*deployments, print_starting_message=False)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
