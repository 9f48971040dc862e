"""Keypoint-guided fitting (hmr.fitting): formulas against independent oracles (finite differences, scipy),
the sub-mesh keypoint model against BodyModel.keypoints, and fits on synthetic bodies and hands with known GT."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.stats import multivariate_normal

from hmr import metrics as M
from hmr.data.synthetic.pose_prior import BodyPosePrior, HandPosePrior
from hmr.fitting import (FitConfig, FitParams, KeypointModel, fit_gt_ceiling, fit_sequence, fit_to_keypoints,
                         project_keypoints, synthetic_pose_gmm)
from hmr.fitting.bench import corrupt_keypoints, load_synthetic_labels, perturb, run_benchmark
from hmr.fitting.objective import frame_bounds, geman_mcclure, outside_frame, so3_exp
from hmr.fitting.pose_prior import fit_gmm, right_jacobian_inverse
from hmr.rotations import axis_angle_to_matrix

K_CAM = torch.tensor([[500.0, 0.0, 128.0], [0.0, 500.0, 128.0], [0.0, 0.0, 1.0]])
FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # SMPL/MANO y-up, z-forward -> OpenCV camera facing the subject


def _gt(model, n: int, seed: int) -> FitParams:
    """``n`` people (or hands) from the synthetic pose prior, facing the camera at 3 m (hands: 0.6 m)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        out = model()
    rest = out.joints[0].double().numpy()
    if model.kind == "body":
        local = BodyPosePrior(rest).sample(rng, n)[0]
        depth = 3.0
    else:
        tips = model.keypoints(out.vertices, out.joints, "freihand21")[0, [4, 8, 12, 16, 20]].double().numpy()
        local = HandPosePrior(rest, tips).sample(rng, n)[0]
        depth = 0.6
    yaw = axis_angle_to_matrix(torch.tensor(rng.uniform(-0.6, 0.6, (n, 1)) * np.array([[0.0, 1.0, 0.0]]),
                                            dtype=torch.float32))
    rotmats = torch.cat([(FLIP @ yaw)[:, None], torch.as_tensor(local, dtype=torch.float32)], dim=1)
    betas = torch.as_tensor(rng.normal(0, 0.7, (n, model.num_betas)), dtype=torch.float32)
    transl = torch.as_tensor(np.c_[rng.normal(0, 0.05, (n, 2)) * depth, np.full(n, depth)], dtype=torch.float32)
    return FitParams(rotmats, betas, transl)


def _setup(model, joint_set: str, n: int = 4, seed: int = 0):
    gt = _gt(model, n, seed)
    return gt, perturb(gt, seed + 1, joint_deg=15.0, orient_deg=8.0), project_keypoints(model, gt, K_CAM, joint_set)


def _mpjpe_mm(model, a: FitParams, b: FitParams) -> np.ndarray:
    with torch.no_grad():
        ja = model(full_pose=a.rotmats, betas=a.betas).joints
        jb = model(full_pose=b.rotmats, betas=b.betas).joints
    return 1000.0 * M.mpjpe(ja, jb, root=0)


# ------------------------------------------------------------------------------------------- formulas
def test_geman_mcclure_gradient_matches_finite_differences():
    sigma = 0.3
    r2 = torch.tensor([0.0, 0.01, 0.09, 1.0, 25.0], dtype=torch.float64, requires_grad=True)
    rho = geman_mcclure(r2, sigma)
    (grad,) = torch.autograd.grad(rho.sum(), r2)
    closed = sigma ** 2 / (r2.detach() + sigma ** 2) ** 2      # d/dr² of r²/(r² + σ²)
    eps = 1e-6
    fd = (geman_mcclure(r2.detach() + eps, sigma) - geman_mcclure(r2.detach() - eps, sigma)) / (2 * eps)
    fd[0] = (geman_mcclure(torch.tensor(eps, dtype=torch.float64), sigma) - 0.0) / eps
    torch.testing.assert_close(grad, closed)
    torch.testing.assert_close(grad, fd, atol=1e-5, rtol=1e-4)
    assert float(rho.detach().max()) < 1.0 and float(rho.detach()[0]) == 0.0


def test_truncation_bounds_and_term_against_hand_values_and_finite_differences():
    """Only weightless, finite keypoints beyond the frame get a bound (on the side they left it); the term is the
    squared distance inside that bound in box sides, averaged over the keypoints, with the matching gradient."""
    nan = float("nan")
    kp = torch.tensor([[[50.0, 50.0], [60.0, 130.0], [-8.0, 40.0], [120.0, 50.0], [nan, nan], [130.0, -5.0]]],
                      dtype=torch.float64)
    weights = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    lower, upper = frame_bounds(kp, weights, torch.tensor([0.0, 0.0, 100.0, 100.0]))
    inf = float("inf")
    assert lower.tolist() == [[[-inf, -inf], [-inf, 100.0], [-inf, -inf], [-inf, -inf], [-inf, -inf], [100.0, -inf]]]
    assert upper.tolist() == [[[inf, inf], [inf, inf], [0.0, inf], [inf, inf], [inf, inf], [inf, 0.0]]]
    pixels = torch.tensor([[[10.0, 10.0], [60.0, 80.0], [5.0, 40.0], [20.0, 20.0], [30.0, 30.0], [90.0, 10.0]]],
                          dtype=torch.float64, requires_grad=True)
    box = torch.tensor([50.0], dtype=torch.float64)
    value = outside_frame(pixels, lower, upper, box)
    hand = (20.0 ** 2 + 5.0 ** 2 + 10.0 ** 2 + 10.0 ** 2) / 50.0 ** 2 / 6
    assert float(value.detach()) == pytest.approx(hand)
    (grad,) = torch.autograd.grad(value.sum(), pixels)
    eps, fd = 1e-6, torch.zeros_like(grad)
    for k in range(6):
        for d in range(2):
            step = torch.zeros_like(grad)
            step[0, k, d] = eps
            fd[0, k, d] = (outside_frame(pixels.detach() + step, lower, upper, box)
                           - outside_frame(pixels.detach() - step, lower, upper, box)).sum() / (2 * eps)
    torch.testing.assert_close(grad, fd, atol=1e-9, rtol=1e-6)
    assert float(outside_frame(torch.tensor([[[50.0, 150.0]]]), lower[:, 1:2].float(), upper[:, 1:2].float(),
                               box.float())) == 0.0  # beyond its edge: no cost


def test_so3_exp_matches_scipy_and_has_a_finite_gradient_at_zero():
    v = torch.randn(6, 3, dtype=torch.float64)
    expected = torch.as_tensor(Rotation.from_rotvec(v.numpy()).as_matrix())
    torch.testing.assert_close(so3_exp(v), expected)
    weights = torch.randn(3, 3, dtype=torch.float64)
    delta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad((so3_exp(delta) * weights).sum(), delta)
    eps = 1e-6
    fd = torch.stack([((so3_exp(eps * e) - so3_exp(-eps * e)) * weights).sum() / (2 * eps)
                      for e in torch.eye(3, dtype=torch.float64)])
    torch.testing.assert_close(grad, fd, atol=1e-7, rtol=1e-6)


def test_right_jacobian_inverse_linearises_the_log_map():
    theta = torch.randn(5, 3, dtype=torch.float64)
    theta = theta / theta.norm(dim=-1, keepdim=True) * torch.tensor([1e-5, 0.3, 1.0, 2.0, 3.0])[:, None].double()
    delta = 1e-4 * torch.randn(5, 3, dtype=torch.float64)
    exact = (Rotation.from_rotvec(theta.numpy()) * Rotation.from_rotvec(delta.numpy())).as_rotvec()
    linear = theta + (right_jacobian_inverse(theta) @ delta[..., None])[..., 0]
    assert np.abs(exact - linear.numpy()).max() < 1e-7            # O(|δ|²) = 1e-8
    assert np.abs(exact - theta.numpy()).max() > 1e-5             # the first-order term matters


def test_gmm_log_likelihood_matches_scipy_and_em_finds_two_clusters():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(300, 2, generator=gen) * 0.2 + torch.tensor([2.0, 0.0]),
                   torch.randn(300, 2, generator=gen) * 0.2 - torch.tensor([2.0, 0.0])]).double()
    gmm = fit_gmm(x, 2, reg=1e-6)
    assert sorted(round(float(m[0])) for m in gmm.means) == [-2, 2]
    cov = torch.linalg.inv(gmm.prec_chol @ gmm.prec_chol.transpose(1, 2))
    pts = torch.randn(7, 2, dtype=torch.float64)
    mixture = sum(float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(pts.numpy())
                  for w, m, c in zip(gmm.log_weights.exp(), gmm.means, cov))
    ours = torch.logsumexp(gmm.log_likelihood(pts), dim=1).numpy()
    np.testing.assert_allclose(ours, np.log(mixture), rtol=1e-8, atol=1e-8)


def test_synthetic_pose_prior_prefers_prior_poses(smpl):
    gmm = synthetic_pose_gmm(smpl)
    natural = _gt(smpl, 16, seed=5).rotmats[:, 1:]
    wild = axis_angle_to_matrix(torch.randn(16, 23, 3))
    assert float(gmm.energy_rotations(natural).median()) < float(gmm.energy_rotations(wild).median()) / 5


# ------------------------------------------------------------------------------------------- keypoint model
@pytest.mark.parametrize("model_name", ["smpl", "mano_right"])
def test_keypoint_model_equals_body_model_keypoints(request, model_name):
    model = request.getfixturevalue(model_name)
    rot, betas = axis_angle_to_matrix(0.4 * torch.randn(3, model.num_joints, 3)), torch.randn(3, model.num_betas)
    out = model(full_pose=rot, betas=betas)
    for set_name in model.keypoint_sets():
        km = KeypointModel(model, set_name)
        torch.testing.assert_close(km(rot, betas), model.keypoints(out.vertices, out.joints, set_name),
                                   atol=2e-6, rtol=1e-5)


def test_keypoint_model_serves_a_set_by_joint_names(smpl):
    from hmr.body.joint_sets import COCO_18, OPENPOSE_25
    rot, betas = axis_angle_to_matrix(0.3 * torch.randn(2, 24, 3)), torch.randn(2, 10)
    coco = KeypointModel(smpl, "coco18")(rot, betas)
    openpose = KeypointModel(smpl, "openpose25")(rot, betas)
    torch.testing.assert_close(coco, openpose[:, [OPENPOSE_25.index(n) for n in COCO_18.names]])
    with pytest.raises(KeyError, match="cannot provide"):
        KeypointModel(smpl, "freihand21")


# ------------------------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("model_name,joint_set", [("smpl", "spin24"), ("mano_right", "freihand21")])
def test_fit_from_perturbed_init_to_exact_keypoints(request, model_name, joint_set):
    model = request.getfixturevalue(model_name)
    gt, init, kp = _setup(model, joint_set)
    result = fit_to_keypoints(model, init, kp, torch.ones(kp.shape[:2]), K_CAM, joint_set)
    assert result.status == ("ok",) * 4 and not result.fell_back.any()
    assert float(result.error_px_after.mean()) < float(result.error_px_before.mean()) / 5
    before, after = _mpjpe_mm(model, init, gt).mean(), _mpjpe_mm(model, result.params, gt).mean()
    assert after < 0.6 * before, (before, after)
    assert result.vertices.shape == (4, model.num_vertices, 3) and result.keypoints_2d.shape == kp.shape
    R = result.params.rotmats.double()
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-5, rtol=0)
    ceiling = fit_gt_ceiling(model, init, gt, K_CAM, joint_set)
    assert _mpjpe_mm(model, ceiling.params, gt).mean() < before


def test_raw_matrices_are_projected_before_fitting(smpl):
    gt, init, kp = _setup(smpl, "spin24", n=2)
    raw = FitParams(1.3 * init.rotmats + 0.05 * torch.randn(init.rotmats.shape), init.betas, init.transl)
    result = fit_to_keypoints(smpl, raw, kp, torch.ones(kp.shape[:2]), K_CAM, "spin24", FitConfig(iterations=5))
    assert torch.allclose(torch.linalg.det(result.params.rotmats), torch.ones(2, 24), atol=1e-5)


def test_low_confidence_wrong_keypoints_do_not_drag_the_fit(smpl):
    gt, init, kp = _setup(smpl, "spin24", n=3)
    ones = torch.ones(kp.shape[:2])
    box = (kp.amax(1) - kp.amin(1)).amax(-1)
    gen = torch.Generator().manual_seed(3)
    wrong = torch.rand(ones.shape, generator=gen) < 0.3                  # "occluded": the detector guesses
    direction = torch.nn.functional.normalize(torch.randn(kp.shape, generator=gen), dim=-1)
    wrong_kp = torch.where(wrong[..., None], kp + 0.15 * box[:, None, None] * direction, kp)
    base = FitConfig(iterations=25)
    missing = fit_to_keypoints(smpl, init, kp, ones, K_CAM, "spin24", base, mask=~wrong)
    reference = _mpjpe_mm(smpl, missing.params, gt).mean()
    errors = {}
    for name, conf, cfg in (("zero", 0.0, base), ("low", 0.05, replace(base, min_confidence=0.0)),
                            ("high", 1.0, base)):
        confidence = torch.where(wrong, torch.full_like(ones, conf), ones)
        fit = fit_to_keypoints(smpl, init, wrong_kp, confidence, K_CAM, "spin24", cfg)
        errors[name] = _mpjpe_mm(smpl, fit.params, gt).mean()
        if name == "zero":  # zero confidence is exactly "not detected"
            torch.testing.assert_close(fit.params.rotmats, missing.params.rotmats)
    assert errors["low"] < reference + 3.0, (reference, errors)
    assert errors["high"] > reference + 5.0, (reference, errors)  # the same keypoints believed do pull


def test_left_right_swapped_limbs_are_relabelled(smpl):
    from hmr.body.joint_sets import SPIN_24
    from hmr.fitting.fit import swap_groups
    groups = swap_groups("spin24")
    legs = next(g for g in groups if SPIN_24.index("l_knee") in g)
    assert sorted(SPIN_24.names[k] for k in legs) == sorted(["l_ankle", "l_hip", "l_knee", "r_ankle", "r_hip",
                                                              "r_knee"])
    assert swap_groups("freihand21") == []
    gt, init, kp = _setup(smpl, "spin24", n=3)
    perm = list(range(24))
    for k in legs:
        perm[k] = SPIN_24.flip[k]
    ones = torch.ones(kp.shape[:2])
    cfg = FitConfig(iterations=20)
    fixed = fit_to_keypoints(smpl, init, kp[:, perm], ones, K_CAM, "spin24", cfg)
    clean = fit_to_keypoints(smpl, init, kp, ones, K_CAM, "spin24", cfg)
    assert fixed.swapped.all() and not clean.swapped.any()
    torch.testing.assert_close(fixed.params.rotmats, clean.params.rotmats)
    believed = fit_to_keypoints(smpl, init, kp[:, perm], ones, K_CAM, "spin24", replace(cfg, swap_ratio=0.0))
    assert not believed.swapped.any()
    assert _mpjpe_mm(smpl, believed.params, gt).mean() > _mpjpe_mm(smpl, clean.params, gt).mean() + 10.0


def test_nan_keypoints_and_divergence_fall_back_with_a_flag(mano_right):
    gt, init, kp = _setup(mano_right, "freihand21", n=3)
    kp = kp.clone()
    kp[1] = float("nan")       # nothing detected
    kp[2, :4] = float("nan")   # partly missing: still fitted
    conf = torch.ones(kp.shape[:2])
    result = fit_to_keypoints(mano_right, init, kp, conf, K_CAM, "freihand21")
    assert result.status == ("ok", "too_few_keypoints", "ok")
    assert result.fell_back.tolist() == [False, True, False] and not result.diverged.any()
    torch.testing.assert_close(result.params.rotmats[1], init.rotmats[1])
    assert torch.isfinite(result.vertices).all() and float(result.error_px_after[2]) < float(result.error_px_before[2])
    mask = torch.ones_like(conf, dtype=torch.bool)
    mask[0, :18] = False       # the detector gives only three keypoints
    masked = fit_to_keypoints(mano_right, init, kp, conf, K_CAM, "freihand21", mask=mask)
    assert masked.status[0] == "too_few_keypoints"
    blown = fit_to_keypoints(mano_right, init, kp, conf, K_CAM, "freihand21",
                             FitConfig.preset("hand", lr_camera=1e6, lr_rotation=1e6, lr_betas=1e6))
    assert blown.diverged[[0, 2]].all() and blown.fell_back.all()
    assert blown.status == ("diverged", "too_few_keypoints", "diverged")
    torch.testing.assert_close(blown.params.transl, init.transl)


def test_bad_start_falls_back(mano_right):
    gt, init, kp = _setup(mano_right, "freihand21", n=2)
    init.transl[0, 2] = -1.0   # behind the camera
    result = fit_to_keypoints(mano_right, init, kp, torch.ones(kp.shape[:2]), K_CAM, "freihand21")
    assert result.status == ("bad_start", "ok")


def test_a_batch_fits_each_person_as_alone(mano_right):
    gt, init, kp = _setup(mano_right, "freihand21", n=3)
    conf = torch.rand(kp.shape[:2], generator=torch.Generator().manual_seed(1)) * 0.8 + 0.2
    cfg = FitConfig.preset("hand", iterations=15)
    batch = fit_to_keypoints(mano_right, init, kp, conf, K_CAM.expand(3, 3, 3), "freihand21", cfg)
    for b in range(3):
        alone = fit_to_keypoints(mano_right, init.select(slice(b, b + 1)), kp[b:b + 1], conf[b:b + 1], K_CAM,
                                 "freihand21", cfg)
        torch.testing.assert_close(batch.params.rotmats[b:b + 1], alone.params.rotmats, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batch.vertices[b:b + 1], alone.vertices, atol=1e-4, rtol=1e-4)


def test_sequence_starts_from_the_previous_fit_and_smooths(mano_right):
    gt0 = _gt(mano_right, 1, seed=7)
    frames, preds, kps = 3, [], []
    for t in range(frames):  # a slowly turning hand; per-frame regressor noise
        turn = axis_angle_to_matrix(torch.tensor([[0.0, 0.03 * t, 0.0]]))
        gt = FitParams(torch.cat([turn[:, None] @ gt0.rotmats[:, :1], gt0.rotmats[:, 1:]], 1), gt0.betas, gt0.transl)
        preds.append(perturb(gt, 100 + t, joint_deg=12.0, orient_deg=6.0))
        kp = project_keypoints(mano_right, gt, K_CAM, "freihand21")
        kps.append(kp + 2.0 * torch.randn(kp.shape, generator=torch.Generator().manual_seed(t)))
    conf = [torch.ones(1, 21)] * frames
    cfg = FitConfig.preset("hand", iterations=15)
    smooth = fit_sequence(mano_right, preds, kps, conf, K_CAM, "freihand21", replace(cfg, w_smooth=1.0))
    free = fit_sequence(mano_right, preds, kps, conf, K_CAM, "freihand21", replace(cfg, w_smooth=0.0))
    alone = [fit_to_keypoints(mano_right, p, k, c, K_CAM, "freihand21", cfg, keypoint_model=KeypointModel(
        mano_right, "freihand21")) for p, k, c in zip(preds[1:], kps[1:], conf[1:])]
    # later frames start from the previous fit: already close to the keypoints before any step
    assert all(float(s.error_px_before) < float(a.error_px_before) / 2 for s, a in zip(smooth[1:], alone))

    def jitter(results):
        verts = torch.stack([r.vertices[0] for r in results])
        return float((verts[1:] - verts[:-1]).norm(dim=-1).mean())
    assert jitter(smooth) < jitter(free)
    assert all(r.status == ("ok",) for r in smooth)


def test_fit_params_conversions(smpl):
    gt = _gt(smpl, 2, seed=1)
    named = gt.to_dict("body")
    assert named["global_orient"].shape == (2, 1, 3, 3) and named["body_pose"].shape == (2, 23, 3, 3)
    back = FitParams.from_dict(named)
    torch.testing.assert_close(back.rotmats, gt.rotmats)
    assert FitParams.from_dict({"rotmats": gt.rotmats, "betas": gt.betas, "transl": gt.transl}).axis_angle().shape == \
        (2, 24, 3)
    with pytest.raises(ValueError, match="transl"):
        FitParams(gt.rotmats, gt.betas, gt.transl[:1])
    with pytest.raises(ValueError, match="keypoints"):
        fit_to_keypoints(smpl, gt, torch.zeros(2, 5, 2), torch.ones(2, 5), K_CAM, "spin24")
    assert FitConfig.preset("hand").lr_camera > FitConfig.preset("body").lr_camera
    with pytest.raises(ValueError, match="sigma"):
        FitConfig(sigma=0.0)


@pytest.fixture(scope="module")
def rendered_bodies(tmp_path_factory):
    """Four rendered synthetic test bodies (the SPIN npz layout tools/make_synthetic.py writes)."""
    from hmr.data.synthetic import SetSpec, generate_set
    root = tmp_path_factory.mktemp("fit_synthetic")
    spec = SetSpec.from_config("body", {"name": "body_fit", "splits": {"test": 4}, "image_sizes": [[96, 128]],
                                        "shard_size": 4}, seed=2)
    generate_set(spec, root=str(root), workers=1, progress=False, contact_sheet=False)
    return root / "body_fit"


def test_benchmark_on_a_rendered_synthetic_set(rendered_bodies, smpl):
    labels = load_synthetic_labels(rendered_bodies, "test")
    assert labels.joint_set == "spin24" and labels.keypoints_2d.shape == (4, 24, 2)
    torch.testing.assert_close(project_keypoints(smpl, labels.params, labels.K, "spin24")[labels.visible],
                               labels.keypoints_2d[labels.visible], atol=0.05, rtol=0)
    report = run_benchmark(smpl, labels, perturb(labels.params, 0), FitConfig(iterations=15), conditions=("gt",))
    gt = report["conditions"]["gt"]
    assert gt["after"]["mpjpe_mm"] < report["before"]["mpjpe_mm"] and "synth_body_test" in report["protocol"]
    assert math.isfinite(gt["seconds_per_person_frame"])


def test_a_fit_that_misses_the_keypoints_falls_back(smpl):
    """Keypoints no body can match (scattered over twice the person's extent) leave the fit far from them:
    status ``missed_keypoints``, the anchor's parameters kept; the same fit with the check off is kept."""
    gt, init, kp = _setup(smpl, "spin24", n=2)
    gen = torch.Generator().manual_seed(5)
    centre, extent = kp[1].mean(0), (kp[1].amax(0) - kp[1].amin(0)).max()
    kp = kp.clone()
    kp[1] = centre + (torch.rand(kp[1].shape, generator=gen) - 0.5) * 2.0 * extent
    ones = torch.ones(kp.shape[:2])
    cfg = FitConfig(iterations=20)
    result = fit_to_keypoints(smpl, init, kp, ones, K_CAM, "spin24", cfg)
    assert result.status == ("ok", "missed_keypoints")
    assert result.fell_back.tolist() == [False, True]
    torch.testing.assert_close(result.params.rotmats[1], init.rotmats[1])
    assert float(result.error_box_after[1]) > cfg.max_error_after > float(result.error_box_after[0])
    kept = fit_to_keypoints(smpl, init, kp, ones, K_CAM, "spin24", replace(cfg, max_error_after=0.0))
    assert kept.status == ("ok", "ok")
    with pytest.raises(ValueError, match="max_error_after"):
        FitConfig(max_error_after=-1.0)


def test_limbs_cut_off_by_the_frame_stay_outside_it(smpl):
    """A frame that ends between the hips and the knees: the legs' keypoints lie beyond it (weight 0). From a
    start with the thighs raised towards the camera (knees and ankles inside the picture, where nothing was
    detected), the truncation term (``w_outside``) moves them out of the frame; without it (the default) they
    stay in."""
    gt, _, kp = _setup(smpl, "spin24", n=4)
    legs = [0, 1, 4, 5]                                                     # spin24 ankles and knees
    bottom = 0.5 * (kp[:, [2, 3], 1].mean(1) + kp[:, [1, 4], 1].mean(1))   # between hips and knees
    frame = torch.stack([torch.full_like(bottom, -1e4), torch.full_like(bottom, -1e4), torch.full_like(bottom, 1e4),
                         bottom], dim=1)
    confidence = (kp[..., 1] < bottom[:, None]).float()
    assert confidence[:, legs].sum() == 0
    raised = gt.rotmats.clone()
    flex = axis_angle_to_matrix(torch.tensor([-1.8, 0.0, 0.0]))
    raised[:, 1:3] = raised[:, 1:3] @ flex                                   # SMPL joints 1, 2: the hips
    start = FitParams(raised, gt.betas, gt.transl)
    start_px = project_keypoints(smpl, start, K_CAM, "spin24")
    assert bool((start_px[:, [1, 4], 1] < bottom[:, None]).all())          # the start's knees are in the picture
    on = fit_to_keypoints(smpl, start, kp, confidence, K_CAM, "spin24", FitConfig(iterations=40, w_outside=10.0),
                          frame=frame)
    off = fit_to_keypoints(smpl, start, kp, confidence, K_CAM, "spin24", FitConfig(iterations=40), frame=frame)
    assert on.status == off.status == ("ok",) * 4
    box = on.box_size[:, None]
    inside_off = ((bottom[:, None] - off.keypoints_2d[:, legs, 1]) / box).clamp_min(0)
    inside_on = ((bottom[:, None] - on.keypoints_2d[:, legs, 1]) / box).clamp_min(0)
    assert float(inside_off.max()) > 0.1, inside_off
    assert float(inside_on.max()) < 0.03, inside_on
    assert float(on.error_box_after.max()) < 0.05        # the detected keypoints are still met
