"""Inference-time consistency refit (issue 9, fix 4): keep the projected (inference) rotations fixed and
re-fit the shape (and a translation) so that the inference skeleton reproduces the training-time joints.

With the rotations fixed, the posed kinematic joints are *linear* in the betas (rest joints are
``joints_template + S β`` and forward kinematics is linear in the rest joints) and in a translation, so the
"few optimisation steps" of the issue are replaced by the exact minimiser of

    Σ_j ||A_j β + t + c_j − target_j||² + λ ||β − β₀||²

solved per sample with one batched (L + 3) × (L + 3) linear system (ridge towards the predicted betas β₀).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
from torch import Tensor

from hmr.engine.forward import body_forward, rotation_matrices
from hmr.engine.gap import kinematic_joints, point_gap
from hmr.geometry.camera import perspective_projection


@dataclass
class RefitResult:
    betas: Tensor            # (B, L) refitted shape
    transl: Tensor           # (B, 3) translation added to the inference mesh
    joints: Tensor           # (B, J, 3) refitted inference joints (translation included)
    gap_before: Tensor       # (B,) mean joint distance to the target before the refit (metres)
    gap_after: Tensor        # (B,) after
    betas_drift: Tensor      # (B,) ||β − β₀||₂


@torch.no_grad()
def refit_shape(body_model, rotations: Tensor, betas: Tensor, target_joints: Tensor, ridge: float = 1e-3,
                fit_translation: bool = True) -> RefitResult:
    """Refit betas (and translation) with ``rotations`` (B, J, 3, 3) fixed so that the kinematic joints match
    ``target_joints`` (B, J, 3) (e.g. the training-time skeleton of the same prediction); ``betas`` (B, L)
    are the starting point and the ridge anchor (``ridge`` ≥ 0, in m² per unit β²)."""
    B, J = rotations.shape[:2]
    if target_joints.shape != (B, J, 3) or betas.ndim != 2 or betas.shape[0] != B:
        raise ValueError(f"refit_shape: expected rotations (B, J, 3, 3), betas (B, L), target (B, J, 3); got "
                         f"{tuple(rotations.shape)}, {tuple(betas.shape)}, {tuple(target_joints.shape)}")
    if ridge < 0 or not torch.isfinite(target_joints).all():
        raise ValueError("refit_shape: ridge must be >= 0 and the target joints finite")
    dtype = torch.float64  # FK in the model's dtype, the small normal equations in double
    b0, target = betas.to(dtype), target_joints.to(dtype)
    L = b0.shape[1]
    zeros = torch.zeros_like(betas)
    base = kinematic_joints(body_model, rotations, zeros).to(dtype)       # c: joints at β = 0
    eye = torch.eye(L, dtype=betas.dtype, device=betas.device)
    cols = [kinematic_joints(body_model, rotations, eye[k].expand(B, L)).to(dtype) - base for k in range(L)]
    A = torch.stack(cols, dim=-1).reshape(B, J * 3, L)                    # d joints / d β
    if fit_translation:
        A = torch.cat([A, torch.eye(3, dtype=dtype, device=betas.device).repeat(J, 1).expand(B, -1, -1)], dim=-1)
    n = A.shape[-1]
    reg = torch.zeros(n, dtype=dtype, device=betas.device)
    reg[:L] = ridge
    prior = torch.zeros(B, n, dtype=dtype, device=betas.device)
    prior[:, :L] = b0
    rhs = (target - base).reshape(B, J * 3, 1)
    lhs = A.transpose(1, 2) @ A + torch.diag(reg)
    sol = torch.linalg.solve(lhs, A.transpose(1, 2) @ rhs + (reg * prior)[..., None]).squeeze(-1)
    new_betas = sol[:, :L]
    transl = sol[:, L:] if fit_translation else torch.zeros(B, 3, dtype=dtype, device=betas.device)
    joints = (A @ sol[..., None]).reshape(B, J, 3) + base
    before = point_gap(base + (A[..., :L] @ b0[..., None]).reshape(B, J, 3), target)
    out_dtype = betas.dtype
    return RefitResult(new_betas.to(out_dtype), transl.to(out_dtype), joints.to(out_dtype),
                       before.to(out_dtype), point_gap(joints, target).to(out_dtype),
                       torch.linalg.vector_norm(new_betas - b0, dim=-1).to(out_dtype))


def refit_prediction(body_model, representation, train_mapping: str, raw: Dict[str, Tensor],
                     pred: Dict[str, Tensor], keypoint_set: str) -> Dict[str, Tensor]:
    """Apply :func:`refit_shape` to an inference-stage prediction (``pred`` from
    :func:`hmr.engine.forward.decode_outputs` of the regressor outputs ``raw``): the target is the training-time
    skeleton of the same outputs (``train_mapping``, e.g. ``"train"``). Returns ``pred`` with ``betas``,
    ``transl`` (camera translation + the fitted shift), vertices, joints, keypoints and ``keypoints_2d`` rebuilt,
    plus ``refit_gap_before`` / ``refit_gap_after`` (B,) in metres and ``betas_drift`` (B,)."""
    train_joints = kinematic_joints(body_model, rotation_matrices(representation, raw["pose_params"], train_mapping),
                                    raw["betas"])
    fit = refit_shape(body_model, pred["rotmats"], raw["betas"], train_joints)
    transl = pred["transl"] + fit.transl
    body = body_forward(body_model, pred["rotmats"], fit.betas, transl, {"keypoints_3d": keypoint_set})
    return {**pred, **body, "betas": fit.betas, "transl": transl,
            "keypoints_2d": perspective_projection(body["keypoints_3d_cam"], pred["K"]),
            "refit_gap_before": fit.gap_before, "refit_gap_after": fit.gap_after, "betas_drift": fit.betas_drift}
