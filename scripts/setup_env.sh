#!/usr/bin/env bash
# Create ./.venv and install hmr with the pinned dependencies (idempotent: a stamp skips a repeated install).
# Usage: bash scripts/setup_env.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${HMR_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.hmr-install-stamp"
WANT="$(cat setup.py requirements/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "[setup] $VENV is up to date"
    exit 0
fi
echo "[setup] installing hmr and pinned dependencies into $VENV (first time: a few minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -e '.[dev]'
echo "$WANT" > "$STAMP"
echo "[setup] done"
