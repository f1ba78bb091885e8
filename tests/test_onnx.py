"""``rltrader export --format onnx``: one graph with the features, the normalization, the policy and the state,
opset 17, every (operator, type) one ONNX Runtime 1.14.1 (MetaTrader 5's) has a kernel for, proven against
the backtest on the whole test split in that runtime (in a Python 3.10 environment of its own) and in the
current one: both algorithms, window 1 and more, every feature option on and off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from rltrader.app.cli import main
from rltrader.bundle import DESCRIPTION_FILE, MANIFEST_FILE, read_bundle
from rltrader.config import Config, load_config
from rltrader.export.graph import GRAPH_FILE, OPSET, state_layout
from rltrader.export.kernels import check_graph, kernel_table
from rltrader.export.onnx_export import PARITY_FILE, RUNTIME_114_KEY
from rltrader.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
#: Every feature option off (the "on" runs use the defaults, where every option is on).
FEATURES_OFF = {"features.atr_period": None, "features.rsi_period": None, "features.macd": None,
                "features.bollinger": None, "features.volume_zscore_window": None, "features.signed_volume": False,
                "features.spread": False, "features.time_of_day": False, "features.day_of_week": False,
                "features.calendar_harmonics": 1, "features.volatility_windows": [], "features.return_horizons": [1]}
#: (algorithm, window, features): both algorithms, window 1 and more, every feature option on and off; the
#: recurrent "off" case also turns the heads' observation skip off (the policy of models written before it).
CASES = [("recurrent", 1, "on"), ("recurrent", 3, "off"), ("feedforward", 1, "off"), ("feedforward", 4, "on")]


def _run(root: Path, **overrides: object) -> tuple[Path, Config]:
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(root / "cache"),
                                                                 "training.iterations": 1, **overrides})
    Trainer(config, SAMPLE, root / "run").run()
    return root / "run", config


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-w{w}-features_{f}" for a, w, f in CASES])
def exported(request, tmp_path_factory) -> tuple[Path, dict, Config]:
    algorithm, window, features = request.param
    root = tmp_path_factory.mktemp(f"onnx-{algorithm}-{window}-{features}")
    overrides = {"training.algorithm": algorithm, "env.window_size": window, **(FEATURES_OFF if features == "off" else {})}
    if features == "off" and algorithm == "recurrent":
        overrides["training.policy.observation_skip"] = False
    run_dir, config = _run(root, **overrides)
    assert main(["export", str(run_dir), "--out", str(root / "exported"), "--format", "onnx", "--data_path",
                 str(SAMPLE)]) == 0
    return root / "exported", json.loads((root / "exported" / PARITY_FILE).read_text()), config


def test_the_exported_graph_decides_as_the_backtest_on_the_whole_test_split(exported):
    bundle_dir, report, _ = exported
    bundle = read_bundle(bundle_dir)  # the graph and its report are in the manifest, verified
    assert set(json.loads((bundle_dir / MANIFEST_FILE).read_text())["files"]) >= {GRAPH_FILE, PARITY_FILE}
    assert report["bars"] >= 800 and report["mismatches"] == []
    assert report["max_feature_abs_diff"] <= 1e-6 and report["max_probability_abs_diff"] <= 1e-5
    assert report["opset"] == OPSET and bundle.description.test_split is not None


def test_the_graph_decides_as_the_fast_evaluator_in_metatrader_5s_onnx_runtime_1_14_1(exported):
    """The export ran the graph over the whole test split in ONNX Runtime 1.14.1 itself (a Python 3.10
    environment built once outside the repo); its actions are the fast evaluator's, bar for bar."""
    bundle_dir, report, config = exported
    old = report[RUNTIME_114_KEY]
    assert old["checked"], old.get("why")
    assert old["bars"] == report["bars"] >= 800 and old["mismatches"] == []
    assert old["max_feature_abs_diff"] <= 1e-6 and old["max_probability_abs_diff"] <= 1e-5
    bundle = read_bundle(bundle_dir)
    evaluator = _fast_evaluator_actions(bundle, config)
    from rltrader.export.onnx_export import graph_outputs_114, stream_split, test_split_rows
    from rltrader.live.bars import read_bar_file

    bars = read_bar_file(SAMPLE, bundle.description).bars
    first, last = test_split_rows(bundle, bars)
    streamed = stream_split(bundle, bars, first, last)
    actions = graph_outputs_114(bundle, (bundle_dir / GRAPH_FILE).read_bytes(), streamed)["action"][streamed.deciding]
    assert len(np.unique(evaluator)) > 1, "the model should trade for this test to mean something"
    np.testing.assert_array_equal(actions[: len(evaluator)], evaluator)


def _fast_evaluator_actions(bundle, config: Config) -> np.ndarray:  # noqa: ANN001
    """The fast evaluator's actions on the bundle's test split (its run's config and cache)."""
    from rltrader.engine.model_files import algorithm_class
    from rltrader.env import MarketData
    from rltrader.evaluation.fast import fast_actions
    from rltrader.features.preparation import preprocess

    market = MarketData.from_prepared(preprocess(SAMPLE, config), config, SAMPLE)
    model = algorithm_class(bundle.description.algorithm).load(str(bundle.policy_path), device="cpu")
    return fast_actions([model], market, "test", config.env)[0]


def test_the_graph_uses_only_runtime_1_14_kernels_and_static_shapes(exported):
    bundle_dir, _, _ = exported
    model = onnx.load(str(bundle_dir / GRAPH_FILE))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET <= 18
    assert model.ir_version <= 8
    check_graph(model)  # every (operator, type) in ONNX Runtime 1.14.1's kernel table
    assert {node.op_type for node in model.graph.node} <= set(kernel_table()["operators"])
    bundle = read_bundle(bundle_dir)
    recurrent = bundle.description.algorithm == "recurrent"
    shapes = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim] for value in
              [*model.graph.input, *model.graph.output]}
    layout = state_layout(bundle)
    expected = {"bar": [1, 7], "account": [1, 2], "state": [1, layout.size], "action": [1], "probabilities": [1, 3],
                "features": [1, len(bundle.description.feature_columns)], "state_out": [1, layout.size]}
    assert {name: shapes[name] for name in expected} == expected
    assert ("lstm" in shapes) == recurrent and ("lstm_out" in shapes) == recurrent
    assert all(d > 0 for dims in shapes.values() for d in dims)  # every dimension fixed


def test_an_export_without_the_training_bars_or_of_an_old_bundle_is_refused_in_one_line(exported, tmp_path, capsys):
    bundle_dir, _, _ = exported
    other = tmp_path / "XAUUSD_M15_other.csv"
    other.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:3000]))
    assert main(["export", str(bundle_dir), "--out", str(tmp_path / "out"), "--format", "onnx", "--data_path",
                 str(other)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not the file the model trained on" in error
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    description = json.loads((old / DESCRIPTION_FILE).read_text())
    description.pop("test_split")
    from rltrader.bundle import BundleDescription, write_bundle
    write_bundle(old, old / "policy.zip", BundleDescription.model_validate(description))
    assert main(["export", str(old), "--out", str(tmp_path / "out"), "--format", "onnx", "--data_path",
                 str(SAMPLE)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "too old for the ONNX exporter" in error
    assert not (tmp_path / "out").exists()


GOLDEN = ROOT / "tests" / "fixtures" / "golden"


def test_the_expert_advisor_matches_its_golden_file_and_declares_the_graphs_shapes(exported):
    """The generated source is compared with a reviewed copy (``RLTRADER_UPDATE_GOLDEN=1`` rewrites it after a
    deliberate change), and its constants and ``OnnxRun`` order with the graph itself."""
    import os
    import re

    from rltrader.export.mql5 import EA_FILE

    bundle_dir, _, config = exported
    source = (bundle_dir / EA_FILE).read_text()
    bundle = read_bundle(bundle_dir)
    if config.features.time_of_day:  # the reviewed copies are of the two default-feature cases
        golden = GOLDEN / f"rltrader_ea_{bundle.description.algorithm}.mq5"
        if os.environ.get("RLTRADER_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(source)
        assert source == golden.read_text()
    model = onnx.load(str(bundle_dir / GRAPH_FILE))
    dims = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in [*model.graph.input, *model.graph.output]}
    defined = {name: int(value) for name, value in re.findall(r"#define (\w+_SIZE|FEATURES|WARMUP_BARS)\s+(\d+)",
                                                                 source)}
    assert defined["BAR_SIZE"] == dims["bar"][1] and defined["STATE_SIZE"] == dims["state"][1]
    assert defined["FEATURES"] == dims["features"][1] and defined["WARMUP_BARS"] == bundle.description.warmup_bars
    inputs = [value.name for value in model.graph.input]
    outputs = [value.name for value in model.graph.output]
    recurrent = bundle.description.algorithm == "recurrent"
    if recurrent:
        assert defined["LSTM_SIZE"] == dims["lstm"][1]
    # OnnxRun passes the inputs, then the outputs, in the graph's order, typed as the graph declares them
    call = re.search(r"OnnxRun\(g_model, ONNX_NO_CONVERSION, ([^;]+)\);", source.split("if(RECURRENT)\n      ok = ")[1]
                     if recurrent else source.split("else\n      ok = ")[1]).group(1)
    names = {"bar": "bar", "account": "account", "g_state": "state", "g_lstm": "lstm", "action": "action",
             "probabilities": "probabilities", "features": "features", "state_out": "state_out",
             "lstm_out": "lstm_out"}
    assert [names[a.strip()] for a in call.replace("\n", " ").split(",")] == inputs + outputs
    types = {"double": onnx.TensorProto.DOUBLE, "float": onnx.TensorProto.FLOAT, "long": onnx.TensorProto.INT64}
    declared = {name: kind for kind, name in re.findall(r"^\s*(double|float|long)\s+(\w+)\[", source, re.M)}
    for value in [*model.graph.input, *model.graph.output]:
        variable = {"state": "g_state", "lstm": "g_lstm"}.get(value.name, value.name)
        assert types[declared[variable]] == value.type.tensor_type.elem_type, value.name


def test_an_export_that_disagrees_with_the_backtest_fails_and_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    import rltrader.export.onnx_export as onnx_export

    bundle_dir, _, _ = exported
    real = onnx_export.compare

    def one_flip(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        report = real(*args, **kwargs)
        report["mismatches"] = [{"bar": 0, "onnx": 2, "stream": 1, "margin": 0.25}]
        return report

    monkeypatch.setattr(onnx_export, "compare", one_flip)
    assert main(["export", str(bundle_dir), "--out", str(tmp_path / "out"), "--format", "onnx", "--data_path",
                 str(SAMPLE)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "disagrees with the backtest on 1 of" in error and "nothing was written" in error
    assert not (tmp_path / "out").exists()
