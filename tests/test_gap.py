"""Train/inference-gap metrics, the consistency refit, the orthogonality penalty, projection annealing and the
scale-free PRoM matrix — each against an independent oracle (the body model, numpy/scipy, finite differences,
constructed cases)."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import hmr.body
from hmr import losses
from hmr.engine.forward import Annealing, OrthoSwitches, blended_matrices, decode_outputs
from hmr.engine.gap import (bone_length_error, chain_depths, gap_report, kinematic_joints, matrix_joint_stats,
                            point_gap, scale_by_depth, training_log_stats, world_matrices)
from hmr.engine.refit import refit_prediction, refit_shape
from hmr.rotations import get, special_procrustes
from hmr.rotations.diagnostics import jacobian, spectrum
from hmr.rotations.scale_free import ScaleFreePRoM


@pytest.fixture(scope="module")
def smpl():
    return hmr.body.load("open-smpl")


def _rotations(n, j, seed=0):
    return torch.from_numpy(Rotation.random(n * j, random_state=seed).as_matrix()).float().reshape(n, j, 3, 3)


def test_kinematic_joints_match_body_model_for_any_matrices(smpl):
    M = torch.eye(3) + 0.4 * torch.randn(3, 24, 3, 3)
    betas = torch.randn(3, 10)
    expected = smpl(full_pose=M, betas=betas).joints
    assert torch.allclose(kinematic_joints(smpl, M, betas), expected, atol=1e-5)
    with pytest.raises(ValueError, match="rotmats"):
        kinematic_joints(smpl, M[:, :5], betas)


def test_matrix_stats_on_constructed_matrices():
    U, V = _rotations(1, 2, seed=3)[0]
    M = (U @ torch.diag(torch.tensor([1.0, 0.5, 0.2])) @ V.T).expand(4, 2, 3, 3).clone()
    M[:, 1] = M[:, 1] @ torch.diag(torch.tensor([1.0, 1.0, -1.0]))      # joint 1: a reflection
    stats = matrix_joint_stats(M)
    np.testing.assert_allclose(stats["sv_mean"][0], [1.0, 0.5, 0.2], atol=1e-5)
    np.testing.assert_allclose(stats["sv_mean"][1], [1.0, 0.5, -0.2], atol=1e-5)
    np.testing.assert_allclose(stats["det_neg_frac"], [0.0, 1.0])
    np.testing.assert_allclose(stats["proj_cond_median"], [1.5 / 0.7, 1.5 / 0.3], rtol=1e-5)
    with pytest.raises(ValueError):
        matrix_joint_stats(M[0])


def test_scale_compounds_with_chain_depth(smpl):
    s = 0.9
    M = s * _rotations(2, 24)
    depth = chain_depths(smpl.parents)
    assert depth.max() == 8 and depth[0] == 0
    np.testing.assert_allclose(scale_by_depth(M, smpl.parents), s ** (np.arange(9) + 1.0), rtol=1e-5)
    world = world_matrices(M.double(), smpl.parents)
    assert torch.allclose(torch.linalg.det(world[:, 0]).abs(), torch.tensor(s ** 3, dtype=torch.float64))


def test_scaled_matrices_shorten_bones_by_the_compounded_scale(smpl):
    R = _rotations(2, 24, seed=1)
    betas = torch.zeros(2, 10)
    gt = kinematic_joints(smpl, R, betas)
    shrunk = kinematic_joints(smpl, 0.9 * R, betas)
    # bone j is scaled by 0.9^(depth of its parent + 1): compute the expected error directly
    depth = torch.as_tensor(chain_depths(smpl.parents))
    bones = torch.linalg.vector_norm(gt[:, 1:] - gt[:, list(smpl.parents[1:])], dim=-1)
    factor = 0.9 ** (depth[list(smpl.parents[1:])] + 1).double()
    expected = ((1 - factor) * bones).mean(dim=-1)
    assert torch.allclose(bone_length_error(shrunk, gt, smpl.parents), expected.float(), atol=1e-5)


def test_point_gap_and_report_on_constructed_cases(smpl):
    a = torch.zeros(2, 5, 3)
    assert torch.allclose(point_gap(a, a + torch.tensor([3.0, 4.0, 0.0])), torch.full((2,), 5.0))
    with pytest.raises(ValueError):
        point_gap(a, a[:, :4])
    R = _rotations(3, 24)
    j = kinematic_joints(smpl, R, torch.zeros(3, 10))
    report = gap_report(smpl.parents, R, j, j, gt_joints=j)
    assert report["metrics"]["inference_gap_mpjpe_mm"] == 0.0
    assert report["metrics"]["train_bone_error_mm"] < 1e-3
    assert report["metrics"]["train_det_neg_frac"] == 0.0
    shifted = gap_report(smpl.parents, R, j + 0.01, j, gt_joints=j, gt_mask=torch.tensor([True, False, True]))
    assert shifted["metrics"]["inference_gap_mpjpe_mm"] == pytest.approx(10 * math.sqrt(3), rel=1e-4)
    assert len(shifted["per_joint"]["sv_mean"]) == 24 and len(shifted["per_depth"]["world_scale"]) == 9


def test_training_log_stats_zero_gap_for_rotations(smpl):
    R = _rotations(4, 24)
    stats = training_log_stats(smpl, R, R, torch.zeros(4, 10), R, torch.zeros(4, 10), torch.ones(4))
    assert stats["gap_joints_mm"] < 1e-3 and stats["gap_bone_error_mm"] < 1e-3
    assert stats["gap_det_neg_frac"] == 0.0 and stats["gap_scale_deepest"] == pytest.approx(1.0, abs=1e-5)


def test_refit_recovers_shape_and_translation_exactly(smpl):
    R = _rotations(3, 24, seed=5)
    true_betas, true_t = torch.randn(3, 10), 0.05 * torch.randn(3, 3)
    target = kinematic_joints(smpl, R, true_betas) + true_t[:, None]
    fit = refit_shape(smpl, R, torch.zeros(3, 10), target, ridge=0.0)
    assert torch.allclose(fit.betas, true_betas, atol=2e-3)
    assert torch.allclose(fit.transl, true_t, atol=1e-4)
    assert float(fit.gap_after.max()) < 1e-4 < float(fit.gap_before.min())


def test_refit_reduces_the_joint_gap_of_shrunk_matrices(smpl):
    R = _rotations(4, 24, seed=6)
    betas = torch.randn(4, 10)
    target = kinematic_joints(smpl, 0.95 * R, betas)        # training-time skeleton of shrunk matrices
    fit = refit_shape(smpl, R, betas, target)
    rms = lambda a: torch.linalg.vector_norm(a - target, dim=-1).pow(2).mean(dim=-1)  # noqa: E731
    before = rms(kinematic_joints(smpl, R, betas))
    after = rms(fit.joints)
    assert bool((after < 0.5 * before).all())
    assert bool((fit.betas_drift > 0).all())
    with pytest.raises(ValueError):
        refit_shape(smpl, R, betas, target[:, :10])
    with pytest.raises(ValueError):
        refit_shape(smpl, R, betas, target * float("nan"))


def test_refit_prediction_rebuilds_the_exported_mesh_around_the_fitted_shape(smpl):
    """The demo's refit: same rotations, betas/translation from refit_shape, everything downstream rebuilt; the
    fitted inference skeleton sits closer to the training-time one; rotations in -> nothing to fix."""
    rep = get("prom")
    R = _rotations(2, 24, seed=7)
    raw = {"pose_params": (0.9 * R).reshape(2, 24, 9), "betas": torch.randn(2, 10),
           "cam": torch.tensor([[0.9, 0.01, -0.02], [1.1, 0.0, 0.05]])}
    batch = {"center": torch.tensor([[320.0, 240.0], [300.0, 200.0]]), "scale": torch.tensor([1.5, 1.2]),
             "focal": torch.tensor([800.0, 900.0]), "img_size": torch.tensor([[480.0, 640.0], [480.0, 640.0]])}
    switches = OrthoSwitches("train", "train", "inference")
    pred = decode_outputs(raw, rep, smpl, batch, switches, "spin24", "inference")
    fitted = refit_prediction(smpl, rep, "train", raw, pred, "spin24")
    assert torch.equal(fitted["rotmats"], pred["rotmats"])
    train_joints = kinematic_joints(smpl, 0.9 * R, raw["betas"])
    shift = fitted["transl"] - pred["transl"]
    gap = lambda joints: torch.linalg.vector_norm(joints - train_joints, dim=-1).mean(dim=-1)  # noqa: E731
    torch.testing.assert_close(gap(fitted["joints"] + shift[:, None]), fitted["refit_gap_after"])
    torch.testing.assert_close(gap(pred["joints"]), fitted["refit_gap_before"])
    assert bool((fitted["refit_gap_after"] < 0.5 * fitted["refit_gap_before"]).all())
    oracle = smpl(full_pose=R, betas=fitted["betas"])
    torch.testing.assert_close(fitted["vertices_cam"], oracle.vertices + fitted["transl"][:, None])
    K = fitted["K"]
    cam = fitted["keypoints_3d_cam"]
    torch.testing.assert_close(fitted["keypoints_2d"], (cam[..., :2] / cam[..., 2:]) * K[:, None, [0, 1], [0, 1]]
                               + K[:, None, :2, 2])
    exact = {**raw, "pose_params": R.reshape(2, 24, 9)}
    exact_pred = decode_outputs(exact, rep, smpl, batch, switches, "spin24", "inference")
    same = refit_prediction(smpl, rep, "train", exact, exact_pred, "spin24")
    torch.testing.assert_close(same["betas"], raw["betas"], atol=1e-4, rtol=0)
    torch.testing.assert_close(same["transl"], exact_pred["transl"], atol=1e-5, rtol=0)


def test_orthogonality_penalty_matches_direct_computation_and_gradient():
    M = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    direct = np.mean([np.sum((m.T @ m - np.eye(3)) ** 2) for m in M.reshape(-1, 3, 3).numpy()])
    assert float(losses.orthogonality_penalty(M)) == pytest.approx(direct, rel=1e-10)
    R = torch.from_numpy(Rotation.random(6, random_state=0).as_matrix())
    assert float(losses.orthogonality_penalty(R)) < 1e-12
    assert float(losses.orthogonality_penalty(-R)) < 1e-12             # reflections are on O(3) too
    assert torch.autograd.gradcheck(losses.orthogonality_penalty, (M.requires_grad_(),))
    with pytest.raises(ValueError):
        losses.orthogonality_penalty(torch.zeros(2, 9))
    assert losses.LossWeights().orthogonality == 0.0


def test_annealing_blend_weights():
    assert Annealing().weight(999, 1000) == 0.0 and Annealing().blend(999, 1000) == {}
    switch = Annealing(kind="switch", start=0.5)
    assert [switch.weight(s, 100) for s in (0, 49, 50, 99)] == [0.0, 0.0, 1.0, 1.0]
    ramp = Annealing(kind="linear", start=0.6, end=0.8, targets=("forward_kinematics", "rotation_loss"))
    assert [ramp.weight(s, 100) for s in (0, 60, 70, 80, 99)] == pytest.approx([0, 0, 0.5, 1, 1])
    assert ramp.blend(70, 100) == pytest.approx({"forward_kinematics": 0.5, "rotation_loss": 0.5})
    cfg = Annealing.from_config({"kind": "linear", "start": 0.1, "end": 0.2, "targets": "rotation_loss"})
    assert cfg.targets == ("rotation_loss",)
    for bad in ({"kind": "cosine"}, {"kind": "linear", "start": 0.8, "end": 0.5}, {"targets": ["loss"]}):
        with pytest.raises(ValueError):
            Annealing.from_config(bad)


def test_blended_matrices_interpolate_towards_the_projection():
    rep = get("prom")
    x = torch.randn(3, 2, 9)
    M, R = rep.train_matrix(x), rep.inference_rotation(x)
    assert torch.equal(blended_matrices(rep, x, "train", 0.0), M)
    assert torch.allclose(blended_matrices(rep, x, "train", 1.0), R)
    assert torch.allclose(blended_matrices(rep, x, "train", 0.25), 0.75 * M + 0.25 * R)
    assert torch.allclose(blended_matrices(rep, x, "inference", 0.25), R)


@pytest.mark.parametrize("mode", ["frobenius", "columns", "det"])
def test_scale_free_prom_removes_scale_and_keeps_det_sign(mode):
    rep = ScaleFreePRoM(mode)
    R = torch.from_numpy(Rotation.random(8, random_state=1).as_matrix())
    x = (0.6 * R).reshape(8, 9)
    assert torch.allclose(rep.train_matrix(x), R, atol=1e-10)            # pure scale removed
    assert torch.allclose(rep.inference_rotation(x), special_procrustes(R), atol=1e-8)
    assert torch.allclose(rep.inference_rotation(rep.encode(R)), R, atol=1e-8)
    reflection = (-0.5 * R).reshape(8, 9)
    assert bool((torch.linalg.det(rep.train_matrix(reflection)) < 0).all())   # det <= 0 stays (stated)
    assert bool((torch.linalg.det(rep.inference_rotation(reflection)) > 0).all())


def test_scale_free_frobenius_jacobian_matches_closed_form():
    rep = ScaleFreePRoM("frobenius")
    x = torch.randn(16, 9, dtype=torch.float64)
    J = jacobian(rep.train_matrix, x)
    sp = spectrum(J)
    assert sp.rank.tolist() == [8] * 16
    expected = math.sqrt(3) / torch.linalg.vector_norm(x, dim=-1)
    assert torch.allclose(sp.singular_values[:, :8], expected[:, None].expand(16, 8), rtol=1e-8)
    assert torch.allclose(sp.condition, torch.ones(16, dtype=torch.float64))
    # and autograd agrees with finite differences
    assert torch.autograd.gradcheck(lambda t: rep.train_matrix(t), (x[:3].clone().requires_grad_(),))


def test_scale_free_errors():
    with pytest.raises(ValueError, match="mode"):
        ScaleFreePRoM("svd")
    with pytest.raises(ValueError, match="eps"):
        ScaleFreePRoM(eps=0)
    with pytest.raises(ValueError):
        ScaleFreePRoM().train_matrix(torch.zeros(2, 6))
