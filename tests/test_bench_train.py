"""tools/bench_train.py end to end on a tiny model: both decode paths timed in one run, ratios printed."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY_TRAIN_OVERRIDES

REPO = Path(__file__).resolve().parents[1]


def test_bench_train_times_both_decode_paths(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "tools/bench_train.py", "--reps", "prom", "--baseline", "prom",
                           "--decode", "keypoints", "--repeats", "1", "--json", str(out), *TINY_TRAIN_OVERRIDES],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "prom/keypoints" in proc.stdout and "ratio vs prom" in proc.stdout
    result = json.loads(out.read_text())["result"]
    assert set(result) == {"prom", "prom/keypoints"}
    assert all(r["median_s"] > 0 for r in result.values())


def test_bench_train_refuses_an_unknown_decode_path():
    proc = subprocess.run([sys.executable, "tools/bench_train.py", "--decode", "vertices"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "invalid choice" in proc.stderr
