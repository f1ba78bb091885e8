#!/bin/sh
# Create the virtual environment .venv/ at the project root, or reuse it.
# It reinstalls only when pyproject.toml changed since the last install, so the README's
# commands cost a second or two after the first time.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
        echo "rltrader needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 2; }
    echo "Creating .venv with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.rltrader-installed
wanted=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing rltrader and its dependencies into .venv (first time: about 2 minutes)" >&2
    # torch first: a bare 'torch' requirement would pull a multi-GB CUDA build on Linux.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    echo "$wanted" > "$stamp"
fi
