"""Retraining as a trader needs it: a challenger on the latest bars, promoted over the champion only on evidence.

FreqAI-style retraining swaps each new model in unconditionally; our own walk-forward measured that
carrying models forward blindly can hurt. A retrain here is three steps, each a function the Prefect
flow (:mod:`flows.retrain`) runs as a task and ``rltrader retrain`` runs in turn:

1. :func:`plan_retrain`: read the file, check its history against the registry's (only appended
   bars), and place walk-forward's last fold at the file's end: train, validation (selects the
   challenger's best model), and a recent held-out window that neither model trained or selected
   on (checked against the champion's own windows). A file with no new bars, or too short for the
   windows, is a skip: the champion is kept and the reason recorded.
2. :func:`train_challenger`: an ordinary training run (every optimization, checkpoints, resumable:
   the same retrain continues a killed one), cold, warm from the champion's weights, or warm with a
   reset optimizer and raised entropy.
3. :func:`decide`: score both bundles on the held-out window with the same costs, test the per-bar
   return differences (:mod:`rltrader.registry.paired_test`), register the challenger as a new
   version and promote it only if it won.

Until step 3 writes ``registry.json`` (atomically) nothing the champion serves from has changed: a
retrain killed at any point leaves the champion serving, untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from rltrader.atomic import write_json
from rltrader.bundle import Bundle, export_bundle, source_bundle
from rltrader.config import Config, CostConfig
from rltrader.data import load_bars
from rltrader.errors import DataError, UserInputError
from rltrader.features.cache import file_digest
from rltrader.features.preparation import PreparedData
from rltrader.live.bars import read_bar_file
from rltrader.registry.history import check_history, save_history
from rltrader.registry.paired_test import PairedComparison, compare
from rltrader.registry.store import (
    DECISION_FILE,
    RUNS_DIR,
    DataWindow,
    ModelVersion,
    Registry,
    RegistryEvent,
    now,
    open_registry,
)
from rltrader.retraining.scoring import WindowScore, score_bundle, window_rows
from rltrader.training.spec import RunSpec
from rltrader.training.trainer import Trainer
from rltrader.walkforward.data import prepare_folds

logger = logging.getLogger(__name__)


class RetrainSpec(BaseModel):
    """One retrain as one typed value: what ``rltrader retrain``, the ``retrain`` flow and the benches all build
    (from :class:`~rltrader.jobs.requests.RetrainRequest`'s ``to_spec``) and every step takes.

    :param name: the model's name: its registry is ``registry_dir/name``
    :param data_path: the bar file, grown since the last retrain
    :param registry_dir: where registries live
    :param config: the challenger's full config (the retrain's profile, windows and seed applied)
    :param settings_file: the performance-mode file the challenger's training reads (None: the config's)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    data_path: str
    registry_dir: str
    config: Config
    settings_file: str | None = None


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain will train and compare (step 1's result; plain data, passed to the other steps).

    :param name: the model's name
    :param registry_root: where registries live
    :param data_path: the bar file
    :param data_sha256: its content hash
    :param config: the challenger's full config (the retrain's profile and seed applied)
    :param windows: train, validation and holdout windows of the challenger's fold
    :param run: the challenger's training run
    :param champion: the champion's version when the plan was made (None: the registry's first model)
    :param start: how the challenger starts (cold when there is no champion)
    :param bars_per_year: the file's calendar (annualizes the Sharpe ratios)
    :param history: the file's bar fingerprint, kept by the registry once the retrain registers
    """

    name: str
    registry_root: str
    data_path: str
    data_sha256: str
    config: Config
    windows: dict[str, DataWindow]
    run: RunSpec
    champion: int | None
    start: str
    bars_per_year: float
    history: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain did: ``promote``, ``keep`` or ``skip``, the version it registered, and why.

    :param name: the model's name
    :param kind: promote (the challenger is the new champion), keep (registered, the champion stays) or
        skip (nothing trained: no new bars, or too few for the windows)
    :param version: the challenger's version number (None on a skip)
    :param champion: the champion after the retrain
    :param reason: the decision in one sentence, with its figures
    :param comparison: the paired test (None on a skip and for a registry's first model)
    :param figures: both models' held-out figures and buy-and-hold's
    :param seconds: the retrain's wall time
    :param compared_with: the champion the challenger was compared with (None on a skip or a first model)
    """

    name: str
    kind: str
    version: int | None
    champion: int | None
    reason: str
    comparison: PairedComparison | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    compared_with: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "version": self.version, "champion": self.champion,
                "reason": self.reason, "seconds": round(self.seconds, 2), "figures": self.figures,
                "compared_with": self.compared_with,
                "comparison": None if self.comparison is None else self.comparison.model_dump(mode="json")}


def config_digest(config: Config) -> str:
    return hashlib.sha256(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def fold_config(config: Config) -> Config:
    """Walk-forward's settings for one fold of the retrain's sizes, ending at the file's last bar."""
    sizes = config.retrain
    return config.with_overrides({"walk_forward.folds": 1, "walk_forward.scheme": "rolling",
                                  "walk_forward.train_bars": sizes.train_bars,
                                  "walk_forward.validation_bars": sizes.validation_bars,
                                  "walk_forward.test_bars": sizes.holdout_bars}, source="retrain")


def prepare_window(path: Path, config: Config) -> PreparedData:
    """The challenger's fold, prepared (features cached); a :class:`DataError` in the retrain's own terms when
    the file is too short for its windows (nothing written then)."""
    try:
        return prepare_folds(path, fold_config(config))[1][0]
    except DataError as error:
        sizes = config.retrain
        found = re.search(r"need ([\d,]+) bars, the file has ([\d,]+) \((\d+) go to the feature warm-up\)", str(error))
        if found is None:
            raise
        need, have, warmup = found.groups()
        raise DataError(path, f"holds {have} bars; a retrain needs {need}: train {sizes.train_bars:,} + validation "
                              f"{sizes.validation_bars:,} + held-out {sizes.holdout_bars:,} bars, the gaps and "
                              f"{warmup} bars of feature warm-up; lower --train_bars, --validation_bars or "
                              "--holdout_bars (retrain: in the config), or export a longer history") from None


def after_break_config(config: Config, alarm: RegistryEvent, history: pd.DataFrame, broken: bool) -> Config | str:
    """The retrain's sizes after a break (``alarm``'s evidence: when the fall began): while the usual windows do not
    fit in the bars since it, the break_* validation and held-out sizes at the file's end and every bar since the
    break before them, so no challenger learns from the old regime; once they fit, the usual sizes. While the window
    grows, a challenger is promoted at ``retrain.break_promote_probability``, below the usual level: it saw
    more of the new regime than the champion did, and on 300 held-out bars the usual 0.9 kept a champion trained on
    900 bars against challengers trained on 2-4 times as many (``bench/retrain_break.py``).

    :param broken: the alarm rang on the champion, which still serves: with fewer than
        ``retrain.break_min_train_bars`` to train on, the reason to keep it for now is returned instead
    """
    sizes, evidence = config.retrain, alarm.evidence or {}
    since = pd.Timestamp(evidence["change_time"])
    bars = int((pd.to_datetime(history["time"].to_numpy(), unit="ns") >= since).sum())
    if bars >= sizes.train_bars + sizes.validation_bars + sizes.holdout_bars + 2 * config.gap_bars:
        return config
    besides = sizes.break_validation_bars + sizes.break_holdout_bars + 2 * config.gap_bars
    train = bars - besides
    if train < sizes.break_min_train_bars:
        if not broken:  # the champion came after the break: the usual windows until the new regime is long enough
            return config
        needed = sizes.break_min_train_bars + besides
        return (f"the champion's edge broke at {since} (alarm at {evidence.get('time')}); {bars:,} bars since, a "
                f"challenger on the new regime needs {needed:,} (retrain.break_*): the champion is kept until then")
    logger.info("Retrain after the break at %s: the challenger trains on the %d bars since it", since, train)
    return config.with_overrides({"retrain.train_bars": train, "retrain.validation_bars": sizes.break_validation_bars,
                                  "retrain.holdout_bars": sizes.break_holdout_bars,
                                  "retrain.promote_probability": sizes.break_promote_probability},
                                 source=f"break at {since}")


def _windows(prepared: PreparedData) -> dict[str, DataWindow]:
    splits = prepared.metadata["splits"]
    return {name: DataWindow(start=splits[key]["start"], end=splits[key]["end"], bars=int(splits[key]["bars"]))
            for name, key in (("train", "train"), ("validation", "validation"), ("holdout", "test"))}


def _skip(registry: Registry, reason: str, started: float) -> RetrainOutcome:
    champion = registry.file.champion
    with registry.writing():
        registry.record("skip", None, champion, reason)
    logger.info("Retrain %s skipped: %s", registry.name, reason)
    return RetrainOutcome(registry.name, "skip", None, champion, reason, seconds=time.perf_counter() - started)


def check_retrain_input(spec: RetrainSpec) -> None:
    """What a retrain refuses before any work starts (``rltrader retrain`` asks before Prefect does): a bad
    name, a missing file, bars that fail loading, an earlier bar that changed. Nothing is written."""
    path = Path(spec.data_path)
    if not path.is_file():
        raise DataError(path, "file not found; check --data_path")
    registry = open_registry(spec.registry_dir, spec.name, must_exist=False)
    check_history(registry.dir, load_bars(path, spec.config.data).bars, path)
    if registry.champion is None:  # a first model cannot be skipped: a file too short is an error, said now
        prepare_window(path, spec.config)


def plan_retrain(spec: RetrainSpec) -> RetrainPlan | RetrainOutcome:
    """Step 1 (see the module docstring): the plan, or the outcome of a skip (recorded in the registry).

    :raises DataError: a file whose earlier bars differ from the registry's history (naming the first), or a
        file too short for the windows when the registry has no champion to keep
    """
    started = time.perf_counter()
    config = spec.config
    registry = open_registry(spec.registry_dir, spec.name, must_exist=False)
    path = Path(spec.data_path)
    if not path.is_file():
        raise DataError(path, "file not found; check --data_path")
    history = check_history(registry.dir, load_bars(path, config.data).bars, path)
    champion = registry.champion
    last_bar = pd.Timestamp(int(history["time"].iloc[-1]))
    latest = registry.file.versions[-1] if registry.file.versions else None
    if latest is not None and pd.Timestamp(latest.windows["holdout"].end) >= last_bar:
        return _skip(registry, f"no new bars: the file ends at {last_bar}, where version {latest.version}'s "
                               "held-out window ended; the champion is kept", started)
    alarm = registry.regime_break() if config.retrain.after_break and champion is not None else None
    if alarm is not None:
        config = after_break_config(config, alarm, history, broken=registry.open_break() is not None)
        if isinstance(config, str):
            return _skip(registry, config, started)
    try:
        prepared = prepare_window(path, config)
    except DataError as error:
        if champion is None:
            raise
        return _skip(registry, f"too few bars for a retrain ({error}); the champion is kept", started)
    windows = _windows(prepared)
    if champion is not None and pd.Timestamp(windows["holdout"].start) <= pd.Timestamp(champion.windows[
            "validation"].end):
        return _skip(registry, f"the held-out window would start at {windows['holdout'].start}, inside version "
                               f"{champion.version}'s validation window (to {champion.windows['validation'].end}), "
                               "so the champion would be scored on bars that selected it; wait for more bars",
                     started)
    start = config.retrain.start if champion is not None else "cold"
    seed = config.training.seed
    end = pd.Timestamp(windows["holdout"].end).strftime("%Y%m%dT%H%M")
    run_dir = registry.dir / RUNS_DIR / f"{end}-seed{seed}-{start}"
    run = RunSpec(config=config, data_path=str(path), run_dir=str(run_dir),
                  prepared=prepared, settings_file=spec.settings_file,
                  initial_model=None if start == "cold" else str(registry.bundle(champion.version).policy_path),
                  reset_from_initial=config.retrain.reset_ent_coef if start == "warm_reset" else None)
    return RetrainPlan(name=registry.name, registry_root=spec.registry_dir, data_path=str(path),
                       data_sha256=file_digest(path), config=config, windows=windows, run=run,
                       champion=None if champion is None else champion.version, start=start,
                       bars_per_year=float(prepared.metadata["bars"]["bars_per_year"]), history=history)


def train_challenger(plan: RetrainPlan) -> str:
    """Step 2: train (or resume, or read back) the challenger's run; returns its directory."""
    run_dir = Path(plan.run.run_dir)
    if (run_dir / "bundle").is_dir() and (run_dir / "optimization_summary.json").is_file():
        logger.info("Challenger of %s already trained in %s", plan.name, run_dir)
        return str(run_dir)
    Trainer.from_spec(plan.run).run()
    return str(run_dir)


def _score(bundle: Bundle, data_path: Path, window: DataWindow, costs: CostConfig) -> WindowScore:
    bars = read_bar_file(data_path, bundle.description).bars
    first, last = window_rows(bars, window.start, window.end)
    return score_bundle(bundle, bars, first, last, costs)


def _report_figures(run_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "report" / "test" / "metrics.json").read_text(encoding="utf-8"))
    keep = ("final_equity", "total_return", "sharpe", "sharpe_interval", "max_drawdown")
    return {"agent": {key: metrics["agent"].get(key) for key in keep},
            "buy_and_hold": {key: metrics["baselines"]["buy_and_hold"].get(key) for key in keep}}


def decide(plan: RetrainPlan, run_dir: str) -> RetrainOutcome:
    """Step 3: score both models on the held-out window, test, register the challenger, promote it if it won."""
    started = time.perf_counter()
    registry = open_registry(plan.registry_root, plan.name, must_exist=False)
    challenger = source_bundle(run_dir)
    costs = plan.config.costs
    holdout = plan.windows["holdout"]
    path = Path(plan.data_path)
    scored = _score(challenger, path, holdout, costs)
    report = _report_figures(Path(run_dir))
    figures: dict[str, Any] = {
        "validation_sharpe": challenger.description.figures.get("validation", {}).get("agent", {}).get("sharpe"),
        "challenger": scored.figures(plan.bars_per_year), "buy_and_hold": report["buy_and_hold"],
        "stream_vs_backtest": float(scored.equity[-1] - report["agent"]["final_equity"]),
    }
    with registry.writing():
        champion = registry.champion
        if champion is not None and champion.version != plan.champion:
            if pd.Timestamp(champion.windows["validation"].end) >= pd.Timestamp(holdout.start):
                raise UserInputError(f"model {plan.name!r}: the champion became version {champion.version} while the "
                                     "challenger trained, and it selected itself on bars of the held-out window; "
                                     "nothing was registered; run the retrain again once more bars arrived")
            logger.warning("The champion of %s changed while the challenger trained (%s -> %s); comparing with the "
                           "new one", plan.name, plan.champion, champion.version)
        comparison = None
        returns: dict[str, list[float]] = {"challenger": scored.returns.tolist()}
        if champion is None:
            kind = "promote"
            reason = (f"promoted: the first model of {plan.name!r}, no champion to compare against (held-out return "
                      f"{100 * figures['challenger']['total_return']:+.2f}%, buy-and-hold "
                      f"{100 * report['buy_and_hold']['total_return']:+.2f}%)")
        else:
            defender = _score(registry.bundle(champion.version), path, holdout, costs)
            figures["champion"] = defender.figures(plan.bars_per_year)
            returns["champion"] = defender.returns.tolist()
            comparison = compare(scored.returns, defender.returns, figures["challenger"]["max_drawdown"],
                                 figures["champion"]["max_drawdown"], plan.config.retrain.promote_probability,
                                 plan.config.retrain.drawdown_tolerance)
            kind, reason = ("promote" if comparison.promote else "keep"), comparison.reason
        number = registry.next_version
        target = registry.version_dir(number)
        export_bundle(run_dir, target / "bundle")
        decision = {"kind": kind, "reason": reason, "holdout": holdout.model_dump(), "figures": figures,
                    "comparison": None if comparison is None else comparison.model_dump(mode="json"),
                    "returns": returns}
        write_json(target / DECISION_FILE, decision)
        entry = ModelVersion(
            version=number, created_at=now(), parent=None if champion is None else champion.version, start=plan.start,
            weights_from=None if plan.start == "cold" or champion is None else champion.version,
            seed=plan.config.training.seed, data_path=plan.data_path, data_sha256=plan.data_sha256,
            windows=plan.windows, config_sha256=config_digest(plan.config), run_dir=run_dir, figures=figures,
            decision={key: decision[key] for key in ("kind", "reason", "comparison")})
        after = number if kind == "promote" else (None if champion is None else champion.version)
        registry.add_version(entry, RegistryEvent(time=now(), kind=kind, version=number,
                                                  champion_before=registry.file.champion, champion_after=after,
                                                  reason=reason))
        save_history(registry.dir, plan.history)
    logger.info("Retrain %s: version %d %s", plan.name, number, reason)
    return RetrainOutcome(plan.name, kind, number, after, reason, comparison, figures,
                          seconds=time.perf_counter() - started,
                          compared_with=None if champion is None else champion.version)


def retrain(spec: RetrainSpec) -> RetrainOutcome:
    """The three steps in turn, without Prefect (the flow runs the same functions as tasks)."""
    started = time.perf_counter()
    plan = plan_retrain(spec)
    if isinstance(plan, RetrainOutcome):
        return plan
    return dataclasses.replace(decide(plan, train_challenger(plan)), seconds=time.perf_counter() - started)


__all__ = ["RetrainOutcome", "RetrainPlan", "RetrainSpec", "check_retrain_input", "config_digest", "decide",
           "fold_config", "plan_retrain", "retrain", "train_challenger"]
