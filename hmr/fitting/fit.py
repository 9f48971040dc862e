"""Keypoint-guided fitting of a body/hand model to 2D keypoints in the full-frame camera, all people of a frame
in one batch (SMPLify/EFT style; objective in :mod:`hmr.fitting.objective`).

Rotation parameterisation. Whatever representation the regressor used, its matrices are first projected to
SO(3) (special Procrustes / SVD: PRoM's raw matrices and 6D-without-orthogonalization outputs are not
rotations; for the others this is a no-op up to rounding). Each joint is then fitted as a residual axis-angle
on top of that start rotation, R_j = R_j,start · exp([δ_j]×), δ initialised at 0. Why: the chart is centred on
the prediction, so it is smooth and singularity-free for ‖δ‖ < π, its Jacobian at δ = 0 is the identity for
every joint (Adam's per-coordinate step is a rotation angle in radians), every iterate is a proper rotation
(no re-projection, no PRoM train/inference gap during the fit), and the stay-near-the-regressor prior becomes
≈ ‖δ‖². Fitting in the network's own representation would inherit its problems (quaternion double cover,
Euler gimbal lock, 9D/6D matrices that drift off SO(3)) and make results differ by representation.

Camera: t = exp(s) · (u_x, u_y, 1) with u = t_xy / t_z (the image-plane direction) and s = log t_z, so a
depth step does not move the person in the image. Stages (SMPLify Sec. 3.3): ``camera_iterations`` Adam steps
on (u, s) alone — cheap, the model keypoints are fixed — then ``iterations`` steps on everything (fitting the
global orientation in the first stage, as SMPLify does with torso joints, turned hands the wrong way while
their fingers were still wrong). Adam is elementwise, so each person's fit is independent of the others in the
batch; the lowest-energy iterate per person is returned. (Batched L-BFGS was tried: its line search couples
the people, and it reached higher errors than Adam in the same time.)

Bad input: keypoints that are missing (``mask``), non-finite or below ``min_confidence`` get weight 0; a person
with fewer than ``min_keypoints`` usable keypoints, a non-finite/behind-camera start, or a fit that produced a
non-finite value falls back to the anchor (the regressor's prediction) and says so in ``FitResult.status``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from hmr.body.joint_sets import get_joint_set
from hmr.fitting.keypoint_model import KeypointModel
from hmr.fitting.objective import (FitConfig, energy, frame_bounds, keypoint_error, keypoint_weights, project,
                                   so3_exp)
from hmr.fitting.params import FitParams
from hmr.fitting.pose_prior import right_jacobian_inverse, synthetic_pose_gmm
from hmr.rotations import matrix_to_axis_angle

log = logging.getLogger(__name__)
OK, DIVERGED, TOO_FEW, BAD_START, MISSED = "ok", "diverged", "too_few_keypoints", "bad_start", "missed_keypoints"


@dataclass
class FitResult:
    """Fitted parameters (the anchor where ``fell_back``), the posed model in the camera frame and diagnostics.

    ``vertices`` (B, V, 3), ``joints`` (B, J, 3), ``keypoints_3d`` (B, K, 3) camera frame; ``keypoints_2d``
    (B, K, 2) pixels; ``error_px_*`` mean distance to the used keypoints (pixels), ``error_box_*`` the same in
    units of ``box_size`` (B,); ``status`` per person: ``ok``, ``diverged``, ``too_few_keypoints``,
    ``bad_start``, ``missed_keypoints`` (the fit ended farther than ``FitConfig.max_error_after`` of the box from
    the keypoints: it did not find them, e.g. keypoints of a pose or person the start cannot reach);
    ``swapped``: the person's left/right keypoint labels were swapped to match the start
    (:func:`left_right_check`); ``seconds`` wall time of the whole call."""

    params: FitParams
    vertices: Tensor
    joints: Tensor
    keypoints_3d: Tensor
    keypoints_2d: Tensor
    error_px_before: Tensor
    error_px_after: Tensor
    error_box_before: Tensor
    error_box_after: Tensor
    box_size: Tensor
    energy_before: Tensor
    energy_after: Tensor
    fell_back: Tensor
    diverged: Tensor
    swapped: Tensor
    status: Tuple[str, ...]
    iterations: int
    seconds: float

    @property
    def seconds_per_person(self) -> float:
        return self.seconds / max(len(self.status), 1)


def _sanitize_start(start: FitParams) -> Tuple[FitParams, Tensor]:
    """Projected start with unusable persons (non-finite, t_z ≤ 0) replaced by identity pose at 3 m; mask of them."""
    finite = (torch.isfinite(start.rotmats).flatten(1).all(1) & torch.isfinite(start.betas).all(1)
              & torch.isfinite(start.transl).all(1))
    bad = ~finite | ~(start.transl[:, 2] > 1e-3)
    if not bad.any():
        return start.projected(), bad
    eye = torch.eye(3, dtype=start.rotmats.dtype, device=start.rotmats.device).expand_as(start.rotmats)
    default_t = start.transl.new_tensor([0.0, 0.0, 3.0]).expand_as(start.transl)
    safe = FitParams(torch.where(bad[:, None, None, None], eye, torch.nan_to_num(start.rotmats)),
                     torch.where(bad[:, None], torch.zeros_like(start.betas), start.betas),
                     torch.where(bad[:, None], default_t, start.transl))
    return safe.projected(), bad


def _box_from(pixels: Tensor) -> Tensor:
    """Side of the square around projected keypoints (B,), at least one pixel."""
    extent = pixels.amax(1) - pixels.amin(1)
    return torch.nan_to_num(extent.amax(-1), nan=1.0).clamp_min(1.0)


class _Problem:
    """The variables of one batched fit (δ_root, δ_local, β, u, s; see the module docstring), the energy at
    them, and each person's lowest-energy iterate so far."""

    def __init__(self, model: KeypointModel, config: FitConfig, start: FitParams, anchor: FitParams,
                 previous: Optional[FitParams], target: Tensor, weights: Tensor, box: Tensor, K: Tensor, prior,
                 bounds: Optional[Tuple[Tensor, Tensor]] = None) -> None:
        B, opts = len(start), {"dtype": start.rotmats.dtype, "device": start.rotmats.device}
        self.model, self.config, self.start, self.anchor = model, config, start, anchor
        self.target, self.weights, self.box, self.K = target, weights, box, K
        self.bounds = bounds if config.w_outside > 0 else None
        self.previous = None if previous is None else (previous.rotmats, previous.betas, previous.transl)
        self.d_root = torch.zeros(B, 1, 3, **opts, requires_grad=True)
        self.d_local = torch.zeros(B, model.num_joints - 1, 3, **opts, requires_grad=True)
        self.betas = start.betas.clone().requires_grad_(True)
        self.u = (start.transl[:, :2] / start.transl[:, 2:]).clone().requires_grad_(True)
        self.s = torch.log(start.transl[:, 2]).clone().requires_grad_(True)
        self.anchor_log_depth = torch.log(anchor.transl[:, 2])
        self.prior = prior if prior is not None and config.w_pose_prior > 0 else None
        if self.prior is not None:
            # E_GMM at θ ≈ θ_start + J_r⁻¹(θ_start) δ, the first-order expansion of log(R_start exp(δ)): one
            # batched product per step instead of a log map; exact at δ = 0, error O(‖δ‖²)
            self.theta0 = matrix_to_axis_angle(start.rotmats[:, 1:])
            self.lin = right_jacobian_inverse(self.theta0)
        with torch.no_grad():
            self.start_points = model(start.rotmats, start.betas)
            self.start_prior = self.prior_energy(self.d_local)
        self.best = FitParams(start.rotmats.clone(), start.betas.clone(), start.transl.clone())
        self.best_energy = torch.full((B,), float("inf"), **opts)
        self.energy_before: Optional[Tensor] = None
        self.diverged = torch.zeros(B, dtype=torch.bool, device=opts["device"])

    def prior_energy(self, d_local: Tensor) -> Optional[Tensor]:
        if self.prior is None:
            return None
        theta = self.theta0 + (self.lin @ d_local[..., None])[..., 0]
        return self.prior.energy(theta.reshape(theta.shape[0], -1))

    def record(self, camera_only: bool = False) -> Tensor:
        """Energy (B,) at the current variables (0 where non-finite: those persons are flagged as diverged);
        keeps each person's lowest-energy iterate. ``camera_only``: rotations and shape are still the start's,
        so the model keypoints are reused, and the returned energy has no gradient from the truncation term
        (moving the whole person to push cut-off limbs out of the picture would undo the alignment this stage is
        for); the recorded energies include it, so that iterates of both stages compare."""
        if camera_only:
            R, points, betas, prior = self.start.rotmats, self.start_points, self.start.betas, self.start_prior
        else:
            R = self.start.rotmats @ so3_exp(torch.cat([self.d_root, self.d_local], dim=1))
            points, betas, prior = self.model(R, self.betas), self.betas, self.prior_energy(self.d_local)
        transl = torch.exp(self.s)[:, None] * torch.cat([self.u, torch.ones_like(self.u[:, :1])], dim=-1)
        pixels = project(points + transl[:, None], self.K)
        terms = energy(self.config, pixels, self.target, self.weights, self.box, R, betas, transl,
                       self.anchor.rotmats, self.anchor.betas, self.anchor_log_depth, prior, self.previous,
                       self.bounds)
        total = terms.total
        finite = torch.isfinite(total) & torch.isfinite(R).flatten(1).all(1) & torch.isfinite(transl).all(1)
        with torch.no_grad():
            self.diverged |= ~finite
            if self.energy_before is None:
                self.energy_before = total.detach().clone()
            better = ~self.diverged & (total < self.best_energy)
            self.best_energy = torch.where(better, total.detach(), self.best_energy)
            self.best = FitParams(R.detach(), betas.detach(), transl.detach()).where(better, self.best)
        if camera_only and self.bounds is not None:  # counted in the energy, but no step follows its gradient
            total = total - self.config.w_outside * (terms.outside - terms.outside.detach())
        return torch.where(finite, total, torch.zeros_like(total))

    def optimise(self) -> None:
        """Adam: camera stage on (u, s), then everything (each with its step size)."""
        cfg = self.config
        camera = [{"params": [self.u, self.s], "lr": cfg.lr_camera}]
        full = camera + [{"params": [self.d_root, self.d_local], "lr": cfg.lr_rotation},
                         {"params": [self.betas], "lr": cfg.lr_betas}]
        for count, groups in ((cfg.camera_iterations, camera), (cfg.iterations, full)):
            if count == 0:
                continue
            optimizer = torch.optim.Adam(groups, foreach=True)
            for _ in range(count):
                optimizer.zero_grad(set_to_none=True)
                self.record(camera_only=groups is camera).sum().backward()
                for group in groups:  # a diverged person must not poison the others' steps
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
                optimizer.step()
        with torch.no_grad():
            self.record()


_LIMB_WORDS = {"leg": ("hip", "knee", "ankle", "foot", "toe", "heel"),
               "arm": ("collar", "shoulder", "elbow", "wrist", "hand")}


def swap_groups(joint_set: str) -> List[List[int]]:
    """The left/right-paired keypoints of a joint set grouped into legs, arms and the rest (head), each group a
    list of the indices that a swap exchanges (empty for sets without pairs, e.g. hands)."""
    js = get_joint_set(joint_set)
    groups: dict = {}
    for k, partner in enumerate(js.flip):
        if partner == k:
            continue
        base = js.names[k].split("_", 1)[-1]
        kind = next((g for g, words in _LIMB_WORDS.items() if any(w in base for w in words)), "head")
        groups.setdefault(kind, []).append(k)
    return list(groups.values())


def left_right_check(start_px: Tensor, keypoints: Tensor, weights: Tensor, box: Tensor, joint_set: str,
                      config: FitConfig) -> Tuple[Tensor, Tensor, Tensor]:
    """Swap a person's left/right keypoint labels, limb group by limb group (legs, arms, head), where the
    swapped labels fit the start (the regressor's prediction) much better: 2D detectors confuse a person's front
    and back, or just the legs or arms, and then label the left limb as the right one. Returns keypoints,
    weights and the swapped flags (B,) (any group swapped)."""
    B, n = keypoints.shape[:2]
    swapped = torch.zeros(B, dtype=torch.bool, device=keypoints.device)
    if config.swap_ratio <= 0:
        return keypoints, weights, swapped
    flip = get_joint_set(joint_set).flip
    target = torch.nan_to_num(keypoints, nan=0.0, posinf=0.0, neginf=0.0)
    # compare after the 2D shift that best aligns the start with the keypoints (a camera error moves every
    # keypoint alike; the weighted mean is the same under either labelling, since a swap only permutes pairs)
    w = weights[..., None]
    start_px = start_px + (w * (target - start_px)).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-9)
    for group in swap_groups(joint_set):
        perm = list(range(n))
        for k in group:
            perm[k] = flip[k]
        in_group = torch.zeros(n, dtype=weights.dtype, device=weights.device)
        in_group[group] = 1.0
        # plain weighted distances: a robust error saturates for a wrongly labelled limb and hides the difference
        as_given = (weights * in_group * (start_px - target).norm(dim=-1)).sum(-1)
        exchanged = (weights[:, perm] * in_group * (start_px - target[:, perm]).norm(dim=-1)).sum(-1)
        swap = exchanged < config.swap_ratio * as_given
        target = torch.where(swap[:, None, None], target[:, perm], target)
        keypoints = torch.where(swap[:, None, None], keypoints[:, perm], keypoints)
        weights = torch.where(swap[:, None], weights[:, perm], weights)
        swapped |= swap
    return keypoints, weights, swapped


def fit_to_keypoints(body_model, init: FitParams, keypoints: Tensor, confidence: Tensor, K: Tensor,
                     joint_set: str, config: Optional[FitConfig] = None, mask: Optional[Tensor] = None,
                     anchor: Optional[FitParams] = None, previous: Optional[FitParams] = None,
                     box_size: Optional[Tensor] = None, keypoint_model: Optional[KeypointModel] = None,
                     frame: Optional[Tensor] = None) -> FitResult:
    """Fit ``body_model`` to 2D ``keypoints`` (B, K, 2) pixels of ``joint_set`` (any set the model provides,
    directly or by joint names) with ``confidence`` (B, K) and optional ``mask`` (B, K) (False: not detected),
    camera intrinsics ``K`` (B, 3, 3) or (3, 3), starting from ``init``.

    ``anchor`` (default ``init``) is what the stay-near prior pulls to and what fallbacks return — the
    regressor's prediction; ``previous`` (video) adds the smoothness term towards the previous frame's fit.
    ``box_size`` (B,) pixels sets the scale of residuals (default: extent of the start's projected keypoints).
    ``keypoint_model``: a prebuilt :class:`KeypointModel` of ``joint_set`` (saves its set-up per call).
    ``frame`` (4,) or (B, 4): the image's (x0, y0, x1, y1) in pixels; keypoints detected beyond it without weight
    keep the model's keypoint beyond it (the truncation term, ``config.w_outside``).
    ``config`` defaults to ``FitConfig.preset(body_model.kind)``.
    """
    t0 = time.perf_counter()
    config = FitConfig.preset(body_model.kind) if config is None else config
    model = keypoint_model if keypoint_model is not None and keypoint_model.set_name == joint_set \
        else KeypointModel(body_model, joint_set)
    opts = {"dtype": body_model.v_template.dtype, "device": body_model.v_template.device}
    B = len(init)
    if keypoints.shape != (B, len(model), 2) or confidence.shape != (B, len(model)):
        raise ValueError(f"{joint_set}: expected keypoints ({B}, {len(model)}, 2) and confidence ({B}, {len(model)}),"
                         f" got {tuple(keypoints.shape)} and {tuple(confidence.shape)}")
    K = torch.as_tensor(K).to(**opts)
    K = K.expand(B, 3, 3) if K.dim() == 2 else K
    init = init.to(**opts)
    anchor = init if anchor is None else anchor.to(**opts)
    keypoints, confidence = keypoints.to(**opts), confidence.to(**opts)
    weights = keypoint_weights(confidence, keypoints, None if mask is None else mask.to(opts["device"]),
                               config.min_confidence)
    if mask is not None:  # an undetected keypoint has no position (nor a truncation bound)
        keypoints = torch.where(mask.to(device=opts["device"], dtype=torch.bool)[..., None], keypoints,
                                torch.full_like(keypoints, float("nan")))
    used = weights > 0
    start, bad_start = _sanitize_start(init)
    anchor_safe, bad_anchor = _sanitize_start(anchor)
    too_few = used.sum(-1) < config.min_keypoints
    weights = torch.where((bad_start | too_few)[:, None], torch.zeros_like(weights), weights)
    with torch.no_grad():
        start_px = project(model(start.rotmats, start.betas) + start.transl[:, None], K)
    box = _box_from(start_px) if box_size is None else torch.as_tensor(box_size).to(**opts).expand(B)
    keypoints, weights, swapped = left_right_check(start_px, keypoints, weights, box, joint_set, config)
    used = weights > 0
    bounds = None
    if frame is not None:  # people who are not fitted get no bounds (their keypoints count as undetected)
        unfitted = (bad_start | too_few)[:, None, None]
        bounds = frame_bounds(torch.where(unfitted, torch.full_like(keypoints, float("nan")), keypoints), weights,
                              torch.as_tensor(frame).to(**opts))
    prior = synthetic_pose_gmm(body_model, config.prior_components) if config.prior_components > 0 else None
    problem = _Problem(model, config, start, anchor_safe,
                       None if previous is None else _sanitize_start(previous.to(**opts))[0],
                       torch.nan_to_num(keypoints, nan=0.0, posinf=0.0, neginf=0.0), weights, box, K, prior, bounds)
    problem.optimise()

    missed = torch.zeros(B, dtype=torch.bool, device=opts["device"])
    if config.max_error_after > 0:
        with torch.no_grad():
            best_px = project(model(problem.best.rotmats, problem.best.betas) + problem.best.transl[:, None], K)
        missed = keypoint_error(best_px, keypoints, used) / box > config.max_error_after
    status = tuple(BAD_START if bool(bad_start[b] or bad_anchor[b]) else TOO_FEW if bool(too_few[b])
                   else DIVERGED if bool(problem.diverged[b]) else MISSED if bool(missed[b]) else OK
                   for b in range(B))
    fell_back = torch.tensor([st != OK for st in status], dtype=torch.bool, device=opts["device"])
    params = problem.best.where(~fell_back, anchor)
    with torch.no_grad():
        out = body_model(full_pose=params.rotmats, betas=params.betas)
        shift = params.transl[:, None]
        kp3d = model(params.rotmats, params.betas) + shift
        pixels = project(kp3d, K)
    err_before, err_after = keypoint_error(start_px, keypoints, used), keypoint_error(pixels, keypoints, used)
    for b in range(B):
        if status[b] != OK:
            log.info("fit: person %d fell back to the anchor (%s)", b, status[b])
    energy_before = problem.energy_before
    return FitResult(
        params=params, vertices=out.vertices + shift, joints=out.joints + shift, keypoints_3d=kp3d,
        keypoints_2d=pixels, error_px_before=err_before, error_px_after=err_after,
        error_box_before=err_before / box, error_box_after=err_after / box, box_size=box,
        energy_before=energy_before, energy_after=torch.where(fell_back, energy_before, problem.best_energy),
        fell_back=fell_back, diverged=problem.diverged, swapped=swapped, status=status,
        iterations=config.camera_iterations + config.iterations, seconds=time.perf_counter() - t0)


def fit_sequence(body_model, predictions: Sequence[FitParams], keypoints: Sequence[Tensor],
                 confidence: Sequence[Tensor], K: Union[Tensor, Sequence[Tensor]], joint_set: str,
                 config: Optional[FitConfig] = None, masks: Optional[Sequence[Optional[Tensor]]] = None
                 ) -> List[FitResult]:
    """Fit a video: frame t holds the same B tracked people in the same order. Frame t starts from frame t−1's
    fit of each person (its regressor prediction where that fit fell back), is anchored to its own prediction
    and adds the smoothness term towards frame t−1's fit. ``K``: one intrinsics tensor, or one per frame."""
    if not len(predictions) == len(keypoints) == len(confidence):
        raise ValueError("predictions, keypoints and confidence need one entry per frame")
    model = KeypointModel(body_model, joint_set)
    results: List[FitResult] = []
    for t, (pred, kp, conf) in enumerate(zip(predictions, keypoints, confidence)):
        mask = masks[t] if masks is not None else None
        Kt = K[t] if isinstance(K, (list, tuple)) else K
        if not results:
            result = fit_to_keypoints(body_model, pred, kp, conf, Kt, joint_set, config, mask,
                                      keypoint_model=model)
        else:
            last = results[-1]
            pred_local = pred.to(dtype=last.params.rotmats.dtype, device=last.params.rotmats.device)
            start = last.params.where(~last.fell_back, pred_local.projected())
            result = fit_to_keypoints(body_model, start, kp, conf, Kt, joint_set, config, mask, anchor=pred,
                                      previous=last.params, keypoint_model=model)
        results.append(result)
    return results


def project_keypoints(body_model, params: FitParams, K: Tensor, joint_set: str) -> Tensor:
    """(B, K, 2) pixels of ``joint_set`` for ``params`` through intrinsics ``K`` (B, 3, 3) or (3, 3)."""
    model = KeypointModel(body_model, joint_set)
    dtype = body_model.v_template.dtype
    params = params.to(dtype=dtype)
    K = torch.as_tensor(K, dtype=dtype)
    K = K.expand(len(params), 3, 3) if K.dim() == 2 else K
    with torch.no_grad():
        return project(model(params.rotmats, params.betas) + params.transl[:, None], K)


def fit_gt_ceiling(body_model, init: FitParams, gt: FitParams, K: Tensor, joint_set: str,
                   config: Optional[FitConfig] = None) -> FitResult:
    """The ceiling of keypoint fitting: fit ``init`` to the exact projections of the ground truth ``gt`` (every
    keypoint, confidence 1). What remains is what 2D keypoints cannot tell (depth, twist) and the priors' pull."""
    target = project_keypoints(body_model, gt, K, joint_set)
    return fit_to_keypoints(body_model, init, target, torch.ones(target.shape[:2]), K, joint_set, config)
