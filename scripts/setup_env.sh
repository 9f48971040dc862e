#!/usr/bin/env bash
# Create ./.venv and install hmr with the pinned dependencies (idempotent: a stamp skips a repeated install),
# then convert MediaPipe's pretrained networks into weights/mediapipe/ (skipped when the converted files verify).
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
else
    echo "[setup] installing hmr and pinned dependencies into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c requirements/constraints.txt -e '.[dev]'
    echo "$WANT" > "$STAMP"
fi

# MediaPipe's BlazePose / hand / selfie networks (Apache-2.0): only mediapipe==0.10.21's wheel still ships the
# .tflite files; its cp311 manylinux wheel is fetched (any host) and converted to torch (hmr/models/mediapipe).
WHEELS=.cache/wheels
if "$VENV/bin/python" tools/convert_mediapipe.py --check > /dev/null 2>&1; then
    echo "[setup] MediaPipe networks are converted"
else
    WHEEL="$(ls "$WHEELS"/mediapipe-0.10.21-*.whl 2> /dev/null | head -n 1 || true)"
    if [ -z "$WHEEL" ]; then
        echo "[setup] downloading mediapipe==0.10.21 (36 MB; only its .tflite files are used) into $WHEELS"
        "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 -d "$WHEELS" mediapipe==0.10.21
        WHEEL="$(ls "$WHEELS"/mediapipe-0.10.21-*.whl | head -n 1)"
    fi
    echo "[setup] converting MediaPipe networks from $WHEEL"
    "$VENV/bin/python" tools/convert_mediapipe.py --wheel "$WHEEL"
fi
echo "[setup] done"
