"""End to end on tiny rendered sets: train.py (body and hand), resume after SIGKILL, eval.py (model, oracle,
mean-pose), error paths."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES, poison_joint_losses

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args, check=True, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def overrides(root, *extra):
    return [f"data.root={root}", *TINY_TRAIN_OVERRIDES, *extra]


@pytest.mark.parametrize("config", ["body_cpu", "hand_cpu"])
def test_train_then_eval(tiny_synthetic_root, tmp_path, config):
    out = tmp_path / "run"
    proc = run_tool("tools/train.py", "--config", f"configs/{config}.yaml", "--out", out,
                    *overrides(tiny_synthetic_root, "train.steps=3"))
    assert "final evaluation" in proc.stdout and "(n=8)" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["eval_metric_samples"]) == set(summary["eval"])
    assert summary["steps"] == 3 and summary["skipped_steps"] == 0
    assert (out / "checkpoints/last.pt").is_file() and (out / "log.csv").is_file()
    result = tmp_path / "eval.json"
    proc = run_tool("tools/eval.py", "--checkpoint", out / "checkpoints/last.pt", "--out", result,
                    f"data.root={tiny_synthetic_root}")
    report = json.loads(result.read_text())
    assert report["count"] == 8 and report["source"] == "model"
    assert report["metric_samples"]["pa_mpjpe_mm"] == 8 and "(n=8)" in proc.stdout
    assert report["protocol"]["name"] in ("synth_body_test", "synth_hand_eval")
    assert all(v == v for v in report["metrics"].values())  # no NaN
    assert (tmp_path / "eval.per_sample.npz").is_file()


@pytest.mark.parametrize("config", ["body_cpu", "hand_cpu"])
def test_oracle_scores_zero_and_baseline_does_not(tiny_synthetic_root, tmp_path, config):
    for source, args in (("oracle", ["--oracle"]), ("mean-pose", ["--baseline", "mean-pose"])):
        out = tmp_path / f"{source}.json"
        run_tool("tools/eval.py", "--config", f"configs/{config}.yaml", *args, "--out", out,
                 f"data.root={tiny_synthetic_root}")
        metrics = json.loads(out.read_text())["metrics"]
        if source == "oracle":
            assert metrics["pa_mpjpe_mm"] < 1e-3, metrics
        else:
            assert metrics["pa_mpjpe_mm"] > 1.0, metrics


def test_resume_after_sigkill_matches_uninterrupted_run(tiny_synthetic_root, tmp_path):
    common = overrides(tiny_synthetic_root, "train.steps=10", "train.checkpoint_every=2", "train.final_eval=false",
                       "train.deterministic=true", "train.schedule.kind=cosine")
    straight = tmp_path / "straight"
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", straight, *common)

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "tools/train.py", "--config", "configs/body_cpu.yaml", "--out",
                             str(killed), *common], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoints/last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = torch.load(killed / "checkpoints/last.pt", weights_only=True)["step"]
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", killed, "--resume", *common)

    a = torch.load(straight / "checkpoints/last.pt", weights_only=True)
    b = torch.load(killed / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 10
    assert step_at_kill < 10, "the run finished before it could be killed; the test proved nothing"
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_train_errors(tiny_synthetic_root, tmp_path):
    proc = run_tool("tools/train.py", "--config", "configs/nope.yaml", check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", tmp_path / "x",
                    *overrides(tmp_path / "empty_root", "train.steps=1"), check=False)
    assert proc.returncode != 0 and "Expected layout" in proc.stderr


def test_eval_rejects_checkpoint_for_another_model(tiny_synthetic_root, tmp_path):
    out = tmp_path / "run"
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out,
             *overrides(tiny_synthetic_root, "train.steps=1", "train.final_eval=false"))
    proc = run_tool("tools/eval.py", "--config", "configs/hand_cpu.yaml", "--checkpoint",
                    out / "checkpoints/last.pt", "--out", tmp_path / "r.json",
                    f"data.root={tiny_synthetic_root}", check=False)
    assert proc.returncode == 2 and "trained for body model" in proc.stderr


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tiny_synthetic_root, tmp_path):
    """DDP (gloo, 2 ranks x 4) consumes the same global batches as one process x 8: loss curves agree up to
    BatchNorm statistics being computed per rank."""
    import csv
    common = overrides(tiny_synthetic_root, "train.steps=6", "train.batch_size=8", "train.final_eval=false")
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", tmp_path / "one", *common)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "tools/train.py", "--config",
                           "configs/body_cpu.yaml", "--out", str(tmp_path / "two"), *map(str, common)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    curves = []
    for name in ("one", "two"):
        with open(tmp_path / name / "log.csv") as handle:
            curves.append([float(row["loss"]) for row in csv.DictReader(handle)])
    assert len(curves[0]) == len(curves[1]) == 6
    for a, b in zip(*curves):
        assert abs(a - b) / a < 0.15, curves


def test_nonfinite_steps_are_skipped_then_training_stops(tiny_synthetic_root, tmp_path):
    from hmr.config import load_config
    from hmr.engine.trainer import Trainer, TrainingDiverged
    cfg = load_config(REPO / "configs/body_cpu.yaml",
                      overrides(tiny_synthetic_root, "train.steps=10", "train.max_consecutive_nonfinite=3",
                                "train.final_eval=false", "train.checkpoint_every=100"))
    trainer = Trainer(cfg, tmp_path / "nan")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
    poison_joint_losses(trainer)
    with pytest.raises(TrainingDiverged, match="3 consecutive non-finite steps"):
        trainer.run()
    assert trainer.skipped_steps == 3
    after = trainer.model.state_dict()
    for key, value in before.items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, after[key]), key
