#!/usr/bin/env bash
# Optional: Blender's Python module (bpy 4.2, Python 3.11, ~520 MB) into .cache/blender, beside the project's
# environment (it is built against NumPy 1.x; the project pins NumPy 2). Used for FBX exports (tools/demo.py
# --export fbx) and by the slow test that opens the exports in Blender (tests/test_blender.py).
# Usage: bash scripts/setup_blender.sh   (after scripts/setup_env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${HMR_BLENDER_PATH:-.cache/blender}"
if [ -d "$TARGET/bpy" ]; then
    echo "[blender] $TARGET already holds bpy"
    exit 0
fi
echo "[blender] installing bpy 4.2.0 and numpy 1.26.4 into $TARGET (~520 MB download)"
.venv/bin/python -m pip install -q --no-deps --only-binary=:all: --target "$TARGET" \
    bpy==4.2.0 numpy==1.26.4 zstandard==0.23.0 requests==2.32.3 urllib3==2.2.3 idna==3.10 certifi==2024.8.30 \
    charset-normalizer==3.4.0 cython==3.0.11
echo "[blender] done"
