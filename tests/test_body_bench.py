"""tools/bench_body.py and hmr.body.benchmark: interleaved timing, peak memory, end-to-end CLI on a tiny run."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from hmr.body.benchmark import peak_memory_mb, time_interleaved

ROOT = Path(__file__).resolve().parents[1]


def test_time_interleaved_alternates_variants():
    order = []
    times = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=1,
                             device=torch.device("cpu"))
    assert order == ["a", "b"] * 4 and len(times["a"]) == len(times["b"]) == 3


def test_peak_memory_sees_a_known_allocation():
    def call():
        x = torch.ones(2 ** 21)  # 8 MB
        y = x * 2  # another 8 MB while x is alive
        del x, y
    assert 15.5 < peak_memory_mb(call, torch.device("cpu")) < 40


def test_bench_cli_tiny_run(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "tools/bench_body.py", "--models", "open-mano-right", "--batches", "2",
                             "--repeats", "2", "--warmup", "0", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "speedup" in result.stdout and "open-mano-right" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["batch"], r["mode"]) for r in rows] == [(2, "forward"), (2, "forward+backward")]
    assert all(r["ours_ms"] > 0 and r["smplx_ms"] > 0 and r["speedup"] > 0 for r in rows)
