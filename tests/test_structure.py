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


def test_the_training_loop_stays_small():
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in (ROOT / "rltrader" / "training").glob("*.py"))
    assert lines < 1500, f"rltrader/training/ has {lines} lines"


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
