"""ONNX Runtime 1.14.1, the runtime MetaTrader 5 embeds, in an environment of its own.

Its wheels exist for CPython 3.8 and 3.10 only; rltrader runs on 3.11. :func:`ensure_runtime` builds (once)
a virtual environment of a Python 3.10 with ``onnxruntime==1.14.1`` and ``numpy<2`` in a cache directory
outside the project's tracked files (``~/.cache/rltrader/onnxruntime-1.14.1``, or ``RLTRADER_ORT114_HOME``),
and :func:`run_runner` runs :mod:`rltrader.export.ort_runner` there.

Python 3.10 is looked for in ``RLTRADER_PYTHON310``, then ``python3.10`` on the PATH, then pyenv's and
the usual install directories. Where there is none, :class:`RuntimeMissing` says what to install.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from rltrader.errors import UserInputError

VERSION = "1.14.1"
RUNNER = Path(__file__).resolve().parent / "ort_runner.py"
REQUIREMENTS = (f"onnxruntime=={VERSION}", "numpy<2")
INSTALL_HINT = ("install CPython 3.10 (e.g. `pyenv install 3.10.13`, or your system's python3.10 package) or "
                "point RLTRADER_PYTHON310 at one: ONNX Runtime 1.14.1, MetaTrader 5's, has wheels for 3.8 and "
                "3.10 only")


class RuntimeMissing(UserInputError):
    """No environment with ONNX Runtime 1.14.1 can be made here."""


def home() -> Path:
    """Where the environment lives (built once, reused)."""
    default = Path.home() / ".cache" / "rltrader" / f"onnxruntime-{VERSION}"
    return Path(os.environ.get("RLTRADER_ORT114_HOME") or default)


def find_python310() -> str | None:
    """A CPython 3.10 interpreter, or None."""
    candidates = [os.environ.get("RLTRADER_PYTHON310"), shutil.which("python3.10")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.10*/bin/python3.10"), reverse=True)
    candidates += ["/usr/local/bin/python3.10", "/usr/bin/python3.10", "/opt/python/3.10/bin/python3.10"]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate
    return None


def environment_python() -> Path:
    return home() / "venv" / "bin" / "python"


def ready() -> bool:
    """Whether the environment is built (without building it)."""
    return (home() / "ready").is_file() and environment_python().is_file()


def ensure_runtime() -> Path:
    """The environment's Python, building the environment first if needed (pip from the package registry).

    :raises RuntimeMissing: no Python 3.10, or the install failed (its last lines in the message)
    """
    if ready():
        return environment_python()
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / "build.lock")):
        if ready():
            return environment_python()
        python = find_python310()
        if python is None:
            raise RuntimeMissing(f"no Python 3.10 found for ONNX Runtime {VERSION}: {INSTALL_HINT}")
        shutil.rmtree(root / "venv", ignore_errors=True)
        steps = [[python, "-m", "venv", str(root / "venv")],
                 [str(environment_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *REQUIREMENTS]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
                raise RuntimeMissing(f"could not build ONNX Runtime {VERSION}'s environment in {root} with {python}: "
                                     f"{tail}")
        (root / "ready").write_text(json.dumps({"python": python, "requirements": REQUIREMENTS}))
    return environment_python()


def run_runner(*arguments: str, timeout: float = 600.0) -> dict[str, Any]:
    """Run :mod:`rltrader.export.ort_runner` with ``arguments`` in the 1.14.1 environment; its JSON answer.

    :raises RuntimeMissing: no environment can be built
    :raises RuntimeError: the runner failed (its stderr's last line in the message)
    """
    python = ensure_runtime()
    done = subprocess.run([str(python), str(RUNNER), *arguments], capture_output=True, text=True, check=False,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"ONNX Runtime {VERSION} runner failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if answer.get("onnxruntime") != VERSION:
        raise RuntimeError(f"the environment in {home()} runs onnxruntime {answer.get('onnxruntime')}, not {VERSION}")
    return answer


def run_graph(command: str, graph_bytes: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``graph_bytes`` through the runner's ``command`` (``run`` or ``features``) with ``feeds`` in the 1.14.1
    environment; the arrays it wrote back.

    :raises RuntimeMissing: no environment can be built
    """
    with tempfile.TemporaryDirectory(prefix="rltrader-ort114-") as directory:
        folder = Path(directory)
        (folder / "graph.onnx").write_bytes(graph_bytes)
        np.savez(folder / "feeds.npz", **feeds)
        run_runner(command, str(folder / "graph.onnx"), str(folder / "feeds.npz"), str(folder / "out.npz"))
        with np.load(folder / "out.npz") as out:
            return {name: out[name] for name in out.files}


def main(argv: list[str]) -> int:
    """``python -m rltrader.export.runtime114``: build the environment (CI calls it before the tests)."""
    try:
        python = ensure_runtime()
    except RuntimeMissing as error:
        print(f"rltrader: {error}", file=sys.stderr)
        return 2
    print(f"ONNX Runtime {VERSION} ready: {python}")
    return 0


__all__ = ["INSTALL_HINT", "VERSION", "RuntimeMissing", "ensure_runtime", "find_python310", "home", "ready",
           "run_graph", "run_runner"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
