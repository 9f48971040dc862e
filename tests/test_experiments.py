"""tools/experiment.py end to end on the tiny preset (seconds), the report, the rotation-task runners and
the error paths."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hmr.experiments import registry, rotation_tasks
from hmr.experiments.report import early_error, goal_statement, prom_gap_rows

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args, check=True, cwd=REPO):
    proc = subprocess.run([sys.executable, str(REPO / "tools/experiment.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_prom_gap_tiny_then_report(tmp_path):
    out, docs = tmp_path / "out", tmp_path / "docs"
    run_tool("prom-gap", "--preset", "tiny", "--out", out, "--threads", "1")
    result = json.loads((out / "prom-gap" / "tiny.json").read_text())
    assert result["machine"]["cpu_count"] and result["wall_seconds"] > 0
    variants = {r["variant"] for r in result["runs"]}
    assert variants == {"prom", "prom+ortho", "prom+anneal", "prom+scale_free", "6d", "svd9d"}
    for run in result["runs"]:
        m = run["final"]["metrics"]
        assert all(v == v for v in m.values()), run["variant"]          # no NaN
        if run["variant"] in ("6d", "svd9d"):                           # training matrix is a rotation
            assert m["inference_gap_pve_mm"] < 1e-2 and m["train_det_neg_frac"] == 0.0
        if run["variant"] == "prom":
            assert m["inference_gap_pve_mm"] > 0 and "refit_pve_mm" in m
        assert run["history"][0]["step"] == 0 and run["history"][-1]["step"] == result["settings"]["steps"]
    run_tool("report", "--results", out, "--docs", docs)
    text = (docs / "results.md").read_text()
    assert "## prom-gap" in text and "| prom+refit |" in text and "Goal check" in text
    assert (docs / "figures" / "prom_gap_curves.png").stat().st_size > 1000
    assert (docs / "results" / "prom-gap" / "tiny.json").is_file()              # copied for reproducibility
    assert "## Not run yet" in text and "`convergence`" in text


def test_cli_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        registry.run_experiment("no-such-experiment", "cpu", tmp_path)
    # image experiments need the synthetic sets: a clear message, not a traceback
    proc = run_tool("convergence", "--preset", "cpu", "--out", tmp_path, check=False, cwd=tmp_path)
    assert proc.returncode == 2 and "make_synthetic.py" in proc.stderr
    with pytest.raises(ValueError, match="preset"):
        registry.run_experiment("prom-gap", "huge", tmp_path)


def test_rotation_recovery_and_point_cloud_tiny(tmp_path):
    rec = rotation_tasks.rotation_recovery("tiny", tmp_path)
    assert [r["representation"] for r in rec["rows"]] == ["prom", "6d"]
    assert all(0 <= r["mean_deg"] <= 180 for r in rec["rows"])
    pc = rotation_tasks.point_cloud("tiny", tmp_path)
    assert {(r["object"], r["representation"]) for r in pc["rows"]} == {
        (o, n) for o in ("open-smpl", "open-mano-right") for n in ("prom", "6d")}
    assert all(0 <= r["mean_deg"] <= 180 for r in pc["rows"])


@pytest.mark.slow
def test_gradients_tiny(tmp_path):
    result = rotation_tasks.gradients("tiny", tmp_path)
    assert len(result["condition_over_training"]) == 4
    assert all(Path(f).is_file() for f in result["figures"])


def test_goal_statement_on_constructed_rows():
    def run(variant, mpjpe, gap, early):
        hist = [{"step": 0, "mpjpe": 500.0}, {"step": 10, "mpjpe": early}, {"step": 80, "mpjpe": mpjpe}]
        return {"variant": variant, "condition": "c", "seed": 0, "history": hist,
                "final": {"metrics": {"mpjpe_mm": mpjpe, "inference_gap_pve_mm": gap}}}
    result = {"variants": {"prom": {}, "prom+x": {}, "6d": {}, "svd9d": {}},
              "runs": [run("prom", 60, 40, 100), run("prom+x", 49, 3, 101), run("6d", 50, 0, 150),
                       run("svd9d", 52, 0, 160)]}
    rows = prom_gap_rows(result, "c")
    assert early_error(result["runs"][0]["history"]) == 100
    statement = goal_statement(rows)
    assert "prom+x: MEETS" in statement and "prom: misses" in statement
