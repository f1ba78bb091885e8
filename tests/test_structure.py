"""The shape of the house: lint clean, packages that keep to themselves, one reading of a policy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rltrader", "flows", "tasks", "deployments")


def _modules() -> dict[str, Path]:
    """Every first-party module by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from module import name`` in a file, relative imports resolved."""
    return _imports_of(path.read_text(encoding="utf-8"), path)


def _imports_of(source: str, path: Path = ROOT / "rltrader" / "module.py") -> list[tuple[str, str]]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = path.relative_to(ROOT).parent.parts[: len(path.relative_to(ROOT).parent.parts) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found += [(module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


#: The domain's layers, lowest first: a package may import its own layer's and lower layers' modules,
#: never a higher layer's (no arrow back up). The app shell sits on top; the root modules at the bottom.
LAYERS = (
    {"rltrader.errors", "rltrader.atomic", "rltrader.config", "rltrader.records"},
    {"rltrader.engine", "rltrader.data", "rltrader.runtime"},
    {"rltrader.features"},
    {"rltrader.env"},
    {"rltrader.evaluation"},
    {"rltrader.bundle"},  # the artifact training writes and everything after it reads
    {"rltrader.registry"},
    {"rltrader.live"},  # streaming, signal, paper trading, take-over: above the registry they follow
    {"rltrader.export"},  # the ONNX graph, its export and proof, MetaTrader 5's runtime and Expert Advisor
    {"rltrader.display"},
    {"rltrader.training"},
    {"rltrader.walkforward", "rltrader.tuning"},
    {"rltrader.retraining"},
    {"rltrader.jobs"},  # the requests every entry point takes: the CLI, flows, tasks, deployments, benches
    {"rltrader.app", "rltrader.__main__"},
)


def _layer(module: str) -> int | None:
    """The layer of a first-party module (its top package under ``rltrader``), None outside the domain."""
    for index, members in enumerate(LAYERS):
        if any(module == member or module.startswith(member + ".") for member in members):
            return index
    return None


def _first_party_imports(path: Path) -> set[str]:
    """Every module a file imports, whether ``import x`` or ``from x import y`` (a submodule y counted as x.y)."""
    modules = _modules()
    found = set()
    for source, name in _imports(path):
        found.add(f"{source}.{name}" if f"{source}.{name}" in modules else source)
    return found


def test_every_domain_module_has_a_layer():
    unplaced = [module for module in _modules() if module.startswith("rltrader.") and _layer(module) is None]
    assert not unplaced, f"add these to LAYERS (or move them into a package that has one): {unplaced}"


def test_no_import_points_up_a_layer():
    """data < features < env < evaluation < display < training < walkforward, tuning < app: the
    package graph a newcomer reads has no cycle and no arrow back up."""
    offences = []
    for module, path in _modules().items():
        own = _layer(module)
        if own is None:
            continue
        for imported in _first_party_imports(path):
            theirs = _layer(imported)
            if theirs is not None and theirs > own:
                offences.append(f"{module} imports {imported}")
    assert not offences, offences


def test_the_domain_never_imports_the_app_shell_or_prefect():
    """The domain runs without Prefect and without the command line (the design card's promise)."""
    outside = ("rltrader.app", "prefect", "prefect_dask", "flows", "tasks", "deployments")
    offences = []
    for module, path in _modules().items():
        if not module.startswith("rltrader.") or _layer(module) == len(LAYERS) - 1:
            continue
        offences += [f"{module} imports {imported}" for imported in _first_party_imports(path)
                     if imported.split(".")[0] in outside or imported.startswith("rltrader.app")]
    assert not offences, offences


def test_the_package_root_keeps_only_what_everything_imports():
    loose = sorted(path.name for path in (ROOT / "rltrader").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "atomic.py", "config.py", "errors.py", "records.py"], loose


def test_the_layer_check_sees_an_arrow_back_up(tmp_path):
    """The check itself: an evaluation module importing the training loop is an offence."""
    assert _layer("rltrader.evaluation.loading") < _layer("rltrader.training.models")
    assert _layer("rltrader.engine.kernels.lstm") < _layer("rltrader.env.market")
    assert [name for _, name in _imports_of("from rltrader.training import models")] == ["models"]


def test_no_module_imports_private_names():
    """Whatever one module uses of another is public (named without a leading underscore), here or in a library."""
    offences = []
    for module, path in _modules().items():
        for source, name in _imports(path):
            private = name.startswith("_") and not name.startswith("__")
            private_module = any(part.startswith("_") and not part.startswith("__") for part in source.split("."))
            if private or private_module:
                offences.append(f"{module}: from {source} import {name}")
    assert not offences, offences

    old = "from rltrader.training.lstm_kernels import _add_products, _cell_update, _exp_into"  # what it refuses
    assert [name for _, name in _imports_of(old)] == ["_add_products", "_cell_update", "_exp_into"]


def test_the_engine_imports_nothing_else_from_rltrader():
    for module, path in _modules().items():
        if module.startswith("rltrader.engine"):
            outside = [source for source, _ in _imports(path)
                       if source.startswith("rltrader") and not source.startswith("rltrader.engine")]
            assert not outside, f"{module} imports {outside}"


def test_a_policy_is_read_into_arrays_in_one_place():
    """Activation codes and the module-to-array reading exist once, shared by the engine and the fast evaluator."""
    sources = {module: path.read_text(encoding="utf-8") for module, path in _modules().items()}
    codes = [module for module, text in sources.items() if "IDENTITY, TANH, RELU = " in text]
    assert codes == ["rltrader.engine.kernels.activations"]
    readers = [module for module, text in sources.items() if "nn.Tanh" in text and "TANH" in text]
    assert readers == ["rltrader.engine.policy_arrays"]
    for user in ("rltrader.engine.rollout_step", "rltrader.evaluation.fast"):
        assert "rltrader.engine.policy_arrays" in {source for source, _ in _imports(_modules()[user])}, user
        assert "weight_hh_l" not in sources[user] and "nn.Tanh" not in sources[user], user


def _lock_calls_without_owner(source: str) -> list[int]:
    """Lines of ``run_directory_lock(...)`` / ``holding(...)`` calls that pass no ``owner=``."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
            in ("run_directory_lock", "holding") and not any(keyword.arg == "owner" for keyword in node.keywords)]


def test_every_run_lock_the_prefect_layer_takes_names_its_flow_run():
    """A flow (or a task in its process) that takes a run directory passes its flow run as the lock's owner:
    without it a ``kill -9`` of that command would leave its run "Running" in the UI after the resume."""
    offences = [f"{module}:{line}" for module, path in _modules().items() if module.split(".")[0] in ("flows", "tasks")
                for line in _lock_calls_without_owner(path.read_text(encoding="utf-8"))]
    assert not offences, offences
    assert _lock_calls_without_owner("with run_directory_lock(root, 'pass another --name'):\n    pass\n") == [1]
    assert _lock_calls_without_owner("with holding(account, owner=flow_run_owner()):\n    pass\n") == []
