"""The README's main job (tools/quickstart.py) end to end on the tiny rendered sets: every stage runs and the
listed outputs exist."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY_TRAIN_OVERRIDES

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_runs_every_stage(tiny_synthetic_root, tmp_path):
    out = tmp_path / "qs"
    proc = subprocess.run([sys.executable, "tools/quickstart.py", "--skip-data", "--data-root",
                           str(tiny_synthetic_root), "--out", str(out), "--steps-body", "2", "--steps-hand", "2",
                           "--demo-images", "2", *(f"--set={o}" for o in TINY_TRAIN_OVERRIDES)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for kind in ("body", "hand"):
        report = json.loads((out / kind / "eval.json").read_text())
        baseline = json.loads((out / kind / "baseline_mean_pose.json").read_text())
        assert report["source"] == "model" and baseline["source"] == "mean-pose"
        assert (out / kind / "checkpoints" / "last.pt").is_file()
        assert len(list((out / "demo" / kind).glob("*/overlay.png"))) == 2
    assert json.loads((out / "body" / "demo_mask_iou.json").read_text())["count"] == 8
    assert "PA-MPJPE reduction vs the mean-pose baseline" in proc.stdout
    assert "Files written under" in proc.stdout
    # the real photos from pip packages: found, fitted, listed first
    photos = json.loads((out / "demo" / "photos" / "summary.json").read_text())
    assert (out / "demo" / "photos" / "camera" / "overlay.png").is_file()
    listing = proc.stdout[proc.stdout.index("Files written under"):]
    assert listing.index("photos/astronaut/overlay.png") < listing.index("body/eval.json")
    assert {f["name"]: len(f["people"]) for f in photos["frames"]} == {"astronaut": 1, "camera": 1, "grace_hopper": 1}
