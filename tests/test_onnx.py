"""``rltrader export --format onnx``: one graph with the features, the normalization, the policy and the state,
opset 17 and a fixed list of common operators (MetaTrader 5 runs ONNX Runtime 1.14: opset <= 18), proven
against the backtest on the test split. ONNX Runtime 1.14's own kernel table is not checked: it is not
installable here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from rltrader.app.cli import main
from rltrader.config import load_config
from rltrader.live.bundle import DESCRIPTION_FILE, MANIFEST_FILE, read_bundle
from rltrader.live.onnx_export import GRAPH_FILE, PARITY_FILE
from rltrader.live.onnx_graph import OPSET, SUPPORTED_OPERATORS, GraphError, check_operators, state_layout
from rltrader.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "XAUUSDm_15min.csv"
def _run(root: Path, **overrides: object) -> Path:
    config = load_config().with_profile("smoke").with_overrides({"cache.dir": str(root / "cache"),
                                                                 "training.iterations": 1, **overrides})
    Trainer(config, SAMPLE, root / "run").run()
    return root / "run"


@pytest.fixture(scope="module", params=["recurrent", "feedforward"])
def exported(request, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp(f"onnx-{request.param}")
    overrides = ({"training.algorithm": "feedforward", "env.window_size": 4} if request.param == "feedforward"
                 else {"training.algorithm": "recurrent"})
    run_dir = _run(root, **overrides)
    assert main(["export", str(run_dir), "--out", str(root / "exported"), "--format", "onnx", "--data_path",
                 str(SAMPLE)]) == 0
    return root / "exported", json.loads((root / "exported" / PARITY_FILE).read_text())


def test_the_exported_graph_decides_as_the_backtest_on_the_whole_test_split(exported):
    bundle_dir, report = exported
    bundle = read_bundle(bundle_dir)  # the graph and its report are in the manifest, verified
    assert set(json.loads((bundle_dir / MANIFEST_FILE).read_text())["files"]) >= {GRAPH_FILE, PARITY_FILE}
    assert report["bars"] >= 800 and report["mismatches"] == []
    assert report["max_feature_abs_diff"] <= 1e-6 and report["max_probability_abs_diff"] <= 1e-5
    assert report["opset"] == OPSET and bundle.description.test_split is not None


def test_the_graph_uses_only_runtime_1_14_operators_and_static_shapes(exported):
    bundle_dir, _ = exported
    model = onnx.load(str(bundle_dir / GRAPH_FILE))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET <= 18
    assert model.ir_version <= 8
    assert {node.op_type for node in model.graph.node} <= SUPPORTED_OPERATORS
    model.graph.node[0].op_type = "Einsum"
    with pytest.raises(GraphError, match="operator Einsum is outside the set"):
        check_operators(model)
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
    bundle_dir, _ = exported
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
    from rltrader.live.bundle import BundleDescription, write_bundle
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

    from rltrader.live.mql5 import EA_FILE

    bundle_dir, _ = exported
    source = (bundle_dir / EA_FILE).read_text()
    bundle = read_bundle(bundle_dir)
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
    import rltrader.live.onnx_export as onnx_export

    bundle_dir, _ = exported
    real = onnx_export.onnx_parity

    def one_flip(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        report = real(*args, **kwargs)
        report["mismatches"] = [{"bar": 0, "onnx": 2, "stream": 1, "margin": 0.25}]
        return report

    monkeypatch.setattr(onnx_export, "onnx_parity", one_flip)
    assert main(["export", str(bundle_dir), "--out", str(tmp_path / "out"), "--format", "onnx", "--data_path",
                 str(SAMPLE)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "disagrees with the backtest on 1 of" in error and "nothing was written" in error
    assert not (tmp_path / "out").exists()
