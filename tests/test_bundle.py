"""The model bundle: written by every finished run, self-contained, verified against its manifest, refused in one
line when it is not what it says."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from sb3_contrib import RecurrentPPO

from rltrader.app.cli import main
from rltrader.bundle import (
    DESCRIPTION_FILE,
    MANIFEST_FILE,
    POLICY_FILE,
    BundleError,
    ema_warmup_bars,
    export_bundle,
    history_needed,
    read_bundle,
)
from rltrader.config import load_config
from rltrader.features.cache import file_digest
from rltrader.features.pipeline import warmup_bars
from rltrader.training.trainer import Trainer

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "XAUUSDm_15min.csv"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("bundle")
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(root / "cache"),
                                                                 "training.iterations": 1})
    summary = Trainer(config, SAMPLE, root / "run").run()
    return root / "run", (config, summary)


def _weights(zip_path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(zip_path) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu", weights_only=True)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(folder.rglob("*"))}


def test_a_finished_run_writes_a_bundle_that_needs_nothing_else(finished_run, tmp_path):
    run_dir, (config, summary) = finished_run
    out = export_bundle(run_dir, tmp_path / "bundle")
    shutil.copytree(run_dir, tmp_path / "run-copy")
    about = out.description
    # what the bundle says is what the run trained with
    prepared_stats = json.loads((run_dir / "bundle" / DESCRIPTION_FILE).read_text())["normalization"]
    assert about.normalization == prepared_stats and about.feature_columns == list(prepared_stats["mean"])
    assert about.training_data.sha256 == file_digest(SAMPLE) and about.symbol == "XAUUSD"
    assert about.bar_interval_seconds == 900.0 and about.window_size == config.env.window_size
    assert about.algorithm == config.training.algorithm and about.seed == config.training.seed
    assert about.figures["test"]["agent"]["sharpe"] == summary.test.agent["sharpe"]
    assert about.account["instrument"]["contract_size"] == 100.0 and about.costs == config.costs.model_dump(mode="json")
    # the warm-up covers the longest window and the slowest exponential average's start (Wilder 14: 373 bars)
    assert about.warmup_bars == history_needed(config.features, True) == ema_warmup_bars(config.features)
    assert about.warmup_bars > warmup_bars(config.features, True) and (13 / 14) ** about.warmup_bars < 1e-12
    # the policy is the run's best model, and stock SB3 (feed-forward) or sb3-contrib (recurrent) reads it
    from stable_baselines3 import PPO

    best, bundled = _weights(run_dir / "best_model.zip"), _weights(out.policy_path)
    assert set(best) == set(bundled) and all(torch.equal(best[key], bundled[key]) for key in best)
    stock = RecurrentPPO if about.algorithm == "recurrent" else PPO
    assert isinstance(stock.load(out.policy_path, device="cpu"), stock)
    # the copy is verified where it lies; the run it came from may be gone
    shutil.rmtree(tmp_path / "run-copy")
    assert read_bundle(tmp_path / "bundle").description == about


def test_a_changed_file_or_an_unknown_schema_is_refused_in_one_line(finished_run, tmp_path, capsys):
    run_dir, _ = finished_run
    bundle = export_bundle(run_dir, tmp_path / "bundle").root
    described = json.loads((bundle / DESCRIPTION_FILE).read_text())
    (bundle / DESCRIPTION_FILE).write_text(json.dumps({**described, "window_size": 2}))
    with pytest.raises(BundleError, match=f"{DESCRIPTION_FILE}: does not match the bundle's manifest"):
        read_bundle(bundle)
    before = _snapshot(tmp_path)
    assert main(["export", str(bundle), "--out", str(tmp_path / "elsewhere")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not match the bundle's manifest" in error and "Traceback" not in error
    assert _snapshot(tmp_path) == before  # nothing written

    fresh = export_bundle(run_dir, tmp_path / "fresh").root
    manifest = json.loads((fresh / MANIFEST_FILE).read_text())
    (fresh / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(BundleError, match="bundle schema version 99, this rltrader .* reads version 1"):
        read_bundle(fresh)
    (fresh / POLICY_FILE).unlink()
    (fresh / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"{POLICY_FILE}: missing from the bundle"):
        read_bundle(fresh)


def test_export_refuses_what_is_not_a_finished_run_and_never_overwrites_other_files(finished_run, tmp_path, capsys):
    run_dir, _ = finished_run
    old_run = tmp_path / "old-run"
    old_run.mkdir()
    shutil.copy(run_dir / "optimization_summary.json", old_run)  # a run finished before bundles
    busy = tmp_path / "notes"
    busy.mkdir()
    (busy / "todo.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    cases = [([str(old_run), "--out", str(tmp_path / "b")], "finished before rltrader wrote bundles"),
             ([str(tmp_path / "nothing"), "--out", str(tmp_path / "b")], "not a directory"),
             ([str(busy), "--out", str(tmp_path / "b")], "holds no finished run and no bundle"),
             ([str(run_dir), "--out", str(busy)], "exists and is not a bundle")]
    for arguments, message in cases:
        assert main(["export", *arguments]) == 2, arguments
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
    assert _snapshot(tmp_path) == before
    # a bundle already at --out is replaced whole
    first = export_bundle(run_dir, tmp_path / "b")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "b")]) == 0
    assert f"{read_bundle(tmp_path / 'b').description.algorithm} policy, XAUUSD, 15-min bars" in capsys.readouterr().out
    assert read_bundle(tmp_path / "b").description.feature_columns == first.description.feature_columns
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".tmp-")]


def test_the_bundle_keeps_the_trust_report_that_judges_its_model(finished_run, tmp_path):
    run_dir, (_, summary) = finished_run
    trust = read_bundle(run_dir / "bundle").description.trust
    test = trust["test"]
    assert test["agent"]["sharpe"] == summary.test.agent["sharpe"]
    assert test["agent"]["sharpe_interval"] == summary.test.agent["sharpe_interval"]
    assert test["buy_and_hold"]["sharpe"] == summary.test.buy_and_hold["sharpe"]
    assert trust["selection"]["trials"] == summary.trials and trust["selection"]["deflated_sharpe"] is not None
    # twice the spread, the same decisions: every trade costs more, for the agent and buy-and-hold alike
    stress = trust["cost_stress"]
    assert stress["spread_multiplier"] == 2.0 and stress["bars"] == test["bars"]
    assert stress["agent"]["trades"] == test["agent"]["trades"]
    assert stress["buy_and_hold"]["total_return"] < test["buy_and_hold"]["total_return"]
    if test["agent"]["trades"]:
        assert stress["agent"]["total_return"] < test["agent"]["total_return"]
    # the bundle's own live stream over the whole test split decides as the backtest did
    parity = trust["parity"]
    assert parity["checked"] and parity["bars"] == test["bars"] and parity["action_mismatches"] == 0
    assert parity["equity_rel_diff"] <= 1e-9
    # it travels with the model and is readable in the report (the UI's training-report artifact)
    assert export_bundle(run_dir, tmp_path / "copy").description.trust == trust
    report = (run_dir / "report" / "report.md").read_text()
    assert "## Trust" in report and "2x the spread" in report and "made 0 different decisions" in report


def test_twice_the_spread_doubles_every_bars_spread_cost(finished_run):
    from rltrader.env import MarketData
    from rltrader.features.preparation import preprocess

    _, (config, _) = finished_run
    prepared = preprocess(SAMPLE, config)
    base = MarketData.from_prepared(prepared, config, SAMPLE)
    stressed = MarketData.from_prepared(prepared, config, SAMPLE, spread_multiplier=2.0)
    commission = config.costs.commission_per_unit
    assert (base.trade_cost > commission).all()
    assert stressed.trade_cost - commission == pytest.approx(2 * (base.trade_cost - commission), rel=1e-12)
    assert (stressed.features == base.features).all() and "x 2" in stressed.spread_source


def test_a_config_a_study_chose_is_known_by_its_overfitting_file_beside_it(tmp_path):
    from rltrader.training.trust import study_figures, study_of

    study = tmp_path / "tune-demo"
    study.mkdir()
    (study / "best_config.yaml").write_text("training: {seed: 7}\n")
    assert study_of(str(study / "best_config.yaml")) is None  # no overfitting.json: not a study's pick
    (study / "overfitting.json").write_text(json.dumps({"pbo": 0.25, "trials": 12, "blocks": 16, "splits": 12870,
                                                        "p_oos_loss": 0.4, "slope": 0.1, "logit_quantiles": [0] * 5,
                                                        "pick": {"trial": 3, "deflated_sharpe": 0.8}}))
    assert study_of(str(study / "best_config.yaml")) == str(study.resolve())
    assert study_of(str(tmp_path / "other.yaml")) is None and study_of(None) is None
    figures = study_figures(study)
    assert figures["pbo"] == 0.25 and figures["trials"] == 12 and figures["pick"]["deflated_sharpe"] == 0.8
    (study / "overfitting.json").write_text("null")  # fewer than two trials kept returns
    assert study_figures(study)["pbo"] is None
