"""The learnability probe: its error measures against hand-computed values, and the CLI end to end."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hmr.experiments.learnability import probe_errors

REPO = Path(__file__).resolve().parents[1]


def test_probe_errors_by_hand():
    target = torch.zeros(1, 2 * 2 + 9 * 2)
    pred = target.clone()
    pred[0, 0:2] = torch.tensor([3.0, 4.0])  # keypoint 0 off by 5, keypoint 1 exact -> mean 2.5
    pred[0, 4:13] = 1.0                       # global orientation: 9 elements off by 1 -> 9
    pred[0, 13] = 2.0                         # one local element off by 2 -> 4
    errors = probe_errors(pred, target, num_keypoints=2)
    assert errors == pytest.approx({"keypoints2d": 2.5, "global_orient": 9.0, "local_pose": 4.0})


def test_probe_cli_on_tiny_set(tmp_path, tiny_synthetic_root):
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools/probe_learnability.py"), "--backbone", "resnet_tiny", "--steps", "4",
         "--eval-every", "2", "--train-samples", "8", "--test-samples", "4", "--batch-size", "4", "--out", str(out),
         f"data.root={tiny_synthetic_root}", "data.crop_size=[64, 48]"],
        capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [row["step"] for row in result["history"]] == [0, 2, 4]
    assert result["train_images"] == 8 and result["test_images"] == 4
    # the head starts at the training mean, so step 0 on the training crops equals the mean predictor
    assert result["history"][0]["train"] == pytest.approx(result["mean_predictor"]["train"], rel=1e-4)
    assert "mean predictor" in proc.stdout


def test_keypoint_pairs_are_bbox_normalised_root_relative_and_masked():
    from types import SimpleNamespace

    import numpy as np

    from hmr.experiments.learnability import load_keypoint_pairs
    kp = np.array([[110.0, 220.0, 1.0], [90.0, 180.0, 1.0], [500.0, 500.0, 0.0]])
    xyz = np.array([[0.1, 0.2, 3.0, 1.0], [0.3, 0.0, 3.0, 1.0], [0.0, -0.4, 3.2, 1.0]])
    ann = SimpleNamespace(keypoints_2d=kp, center=np.array([100.0, 200.0]), scale=0.5, joints_3d=xyz)
    dataset = type("D", (), {"annotation": lambda self, i: ann, "__len__": lambda self: 1})()
    inputs, joints = load_keypoint_pairs(dataset, 5, root_joints=(0, 1))
    torch.testing.assert_close(inputs[0], torch.tensor([0.2, 0.4, -0.2, -0.4, 0.0, 0.0]))  # (x - c) / 50, masked
    torch.testing.assert_close(joints[0], torch.tensor([[-0.1, 0.1, 0.0], [0.1, -0.1, 0.0], [-0.2, -0.5, 0.2]]))


def test_keypoint_lifting_cli_on_tiny_set(tmp_path, tiny_synthetic_root):
    out = tmp_path / "lift.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools/probe_keypoint_lifting.py"), "--steps", "6", "--eval-every", "3",
         "--train-samples", "8", "--test-samples", "4", "--batch-size", "4", "--hidden", "16", "--out", str(out),
         f"data.root={tiny_synthetic_root}"],
        capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [row["step"] for row in result["history"]] == [0, 3, 6]
    assert result["train_samples"] == 8 and result["test_samples"] == 4
    # the output layer starts at zero, so step 0 is the training-mean predictor exactly
    assert result["history"][0]["test_pa_mpjpe_mm"] == pytest.approx(result["mean_predictor_pa_mpjpe_mm"])
    assert result["mean_predictor_pa_mpjpe_mm"] > 0 and "mean predictor" in proc.stdout
