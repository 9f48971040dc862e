"""The gap measurements and fixes inside the engine: training logs (gap_* columns), orthogonality penalty and
projection annealing through the trainer, and tools/eval.py --refit on a tiny rendered set."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN_OVERRIDES
from hmr.engine.evaluator import final_fk_blend
from hmr.engine.forward import OrthoSwitches, decode_outputs
from hmr.rotations import get

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args, check=True):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_train_with_fixes_logs_gap_then_eval_refit(tiny_synthetic_root, tmp_path):
    out = tmp_path / "run"
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out, f"data.root={tiny_synthetic_root}",
             *TINY_TRAIN_OVERRIDES, "train.steps=4", "loss.orthogonality=0.5",
             "representation.anneal={kind: switch, start: 0.5, targets: [forward_kinematics, rotation_loss]}")
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [float(r["anneal_weight"]) for r in rows] == [0.0, 0.0, 1.0, 1.0]
    for key in ("orthogonality", "gap_sv_min_p5", "gap_det_neg_frac", "gap_joints_mm", "gap_bone_error_mm",
                "gap_scale_deepest"):
        assert all(float(r[key]) == float(r[key]) for r in rows), key   # present and not NaN
    result = tmp_path / "eval.json"
    proc = run_tool("tools/eval.py", "--checkpoint", out / "checkpoints/last.pt", "--out", result, "--refit",
                    f"data.root={tiny_synthetic_root}")
    assert "refit_gap_mpjpe_mm" in proc.stdout
    report = json.loads(result.read_text())
    m = report["metrics"]
    # the model was annealed to the projection for FK: its training-time mesh is the inference mesh
    assert m["inference_gap_pve_mm"] < 1e-3 and m["inference_gap_mpjpe_mm"] < 1e-3
    for key in ("train_sv_min_mean", "train_det_neg_frac", "train_proj_cond_p95", "train_bone_error_mm",
                "inference_bone_error_mm", "refit_mpjpe_mm", "refit_betas_drift"):
        assert key in m and m[key] == m[key], key
    gap = report["train_inference_gap"]
    assert len(gap["per_joint"]["sv_mean"]) == 24 and len(gap["per_depth"]["world_scale"]) == 9


@pytest.mark.slow
def test_plain_prom_eval_reports_a_nonzero_gap(tiny_synthetic_root, tmp_path):
    out = tmp_path / "run"
    run_tool("tools/train.py", "--config", "configs/body_cpu.yaml", "--out", out, f"data.root={tiny_synthetic_root}",
             *TINY_TRAIN_OVERRIDES, "train.steps=2")
    result = tmp_path / "eval.json"
    run_tool("tools/eval.py", "--checkpoint", out / "checkpoints/last.pt", "--out", result,
             f"data.root={tiny_synthetic_root}")
    m = json.loads(result.read_text())["metrics"]
    assert m["inference_gap_mpjpe_mm"] > 0 and m["inference_gap_pve_mm"] > 0
    assert "refit_mpjpe_mm" not in m


def test_decode_outputs_blend_and_final_weight():
    import hmr.body
    body = hmr.body.load("open-mano-right")
    rep = get("prom")
    params = torch.randn(2, 16, 9)
    out = {"pose_params": params, "betas": torch.zeros(2, 10), "cam": torch.tensor([[1.0, 0.0, 0.0]] * 2)}
    batch = {"center": torch.full((2, 2), 50.0), "scale": torch.ones(2), "focal": torch.full((2,), 100.0),
             "img_size": torch.full((2, 2), 100.0)}
    plain = decode_outputs(out, rep, body, batch, OrthoSwitches(), "mano16", "train")
    blended = decode_outputs(out, rep, body, batch, OrthoSwitches(), "mano16", "train",
                             blend={"rotation_loss": 1.0})
    assert torch.equal(plain["rotmats"], blended["rotmats"])
    assert torch.allclose(blended["rotmats_loss"], rep.inference_rotation(params))
    cfg = {"representation": {"anneal": {"kind": "linear", "start": 0.5, "end": 1.0}}, "train": {"steps": 10}}
    assert final_fk_blend(cfg) == 0.8
    assert final_fk_blend({"representation": {}, "train": {"steps": 10}}) == 0.0


@pytest.mark.parametrize("model_name, keypoint_set", [("open-smpl", "spin24"), ("open-mano-right", "freihand21")])
def test_decode_outputs_keypoint_model_matches_the_skinned_mesh(model_name, keypoint_set):
    """The trainer's vertex-free path (KeypointModel) gives the mesh path's keypoints and projections, also for
    raw (non-orthogonal) PRoM matrices and betas, and their gradients."""
    import hmr.body
    from hmr.fitting.keypoint_model import KeypointModel
    body = hmr.body.load(model_name)
    rep = get("prom")
    gen = torch.Generator().manual_seed(3)
    params = (torch.eye(3).reshape(1, 1, 9) + 0.4 * torch.randn(3, body.num_joints, 9, generator=gen))
    out = {"pose_params": params.requires_grad_(), "betas": torch.randn(3, 10, generator=gen),
           "cam": torch.tensor([[0.9, 0.05, -0.1]] * 3)}
    batch = {"center": torch.full((3, 2), 120.0), "scale": torch.full((3,), 1.1), "focal": torch.full((3,), 500.0),
             "img_size": torch.full((3, 2), 240.0)}
    mesh = decode_outputs(out, rep, body, batch, OrthoSwitches(), keypoint_set, "train")
    fast = decode_outputs(out, rep, body, batch, OrthoSwitches(), keypoint_set, "train",
                          keypoint_model=KeypointModel(body, keypoint_set))
    assert "vertices" in mesh and "vertices" not in fast
    for key in ("keypoints_3d", "keypoints_3d_cam", "keypoints_2d", "transl", "rotmats_loss"):
        assert torch.allclose(fast[key], mesh[key], atol=1e-4, rtol=1e-4), key
    grad_mesh, = torch.autograd.grad(mesh["keypoints_2d"].sum(), params)
    grad_fast, = torch.autograd.grad(fast["keypoints_2d"].sum(), params)
    assert torch.allclose(grad_fast, grad_mesh, atol=1e-3, rtol=1e-3)
