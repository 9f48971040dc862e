"""PRoM's train/inference gap, measured (issue 9): how far the training-time matrices are from rotations, and
how far the mesh the losses saw is from the mesh that is exported.

- Matrix statistics per joint: singular values (mean / 5th percentile), the fraction with det < 0 and the
  special-Procrustes condition number (s1 + s2) / (s2 + s3) with the *signed* smallest singular value s3.
- Scale per kinematic-chain depth: forward kinematics multiplies the joint matrices along the chain, so the
  world matrix of a joint at depth d is a product of d + 1 matrices; its scale |det|^(1/3) compounds.
- Gap: MPJPE / PVE between the training-time and the inference-time meshes of the same prediction, and the
  bone-length error of the training-time skeleton against ground truth.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from hmr.body.lbs import kinematic_levels, rigid_transforms, shape_blend
from hmr.rotations.diagnostics import signed_singular_values


def chain_depths(parents: Sequence[int]) -> np.ndarray:
    """Depth of every joint in the kinematic tree (root = 0); parents must precede children."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(f"parents must list every parent before its child, got {tuple(parents)}")
        depth[j] = depth[parents[j]] + 1
    return depth


def kinematic_joints(body_model, rotmats: Tensor, betas: Optional[Tensor]) -> Tensor:
    """Posed kinematic joints (B, J, 3) from (B, J, 3, 3) matrices (any, not only rotations) and betas, without
    skinning the vertices: rest joints are linear in the betas, then the chain (SMPL Eq. 3-4).

    Equals ``body_model(full_pose=rotmats, betas=betas).joints`` (tested) at a fraction of the cost.
    """
    if rotmats.ndim != 4 or rotmats.shape[1:] != (body_model.num_joints, 3, 3):
        raise ValueError(f"rotmats: expected (B, {body_model.num_joints}, 3, 3), got {tuple(rotmats.shape)}")
    dtype = body_model.joints_template.dtype
    rest = shape_blend(body_model.joints_template, body_model.joint_shapedirs_flat,
                       None if betas is None else betas.to(dtype))
    rest = rest.expand(rotmats.shape[0], -1, -1)
    tree = kinematic_levels(body_model.parents)
    joints, _ = rigid_transforms(rotmats.to(dtype), rest, tree, body_model.parents_index)
    return joints


def world_matrices(rotmats: Tensor, parents: Sequence[int]) -> Tensor:
    """Accumulated (world) matrices G_j = G_parent(j) · M_j along the tree: (B, J, 3, 3)."""
    out = [rotmats[:, 0]]
    for j in range(1, len(parents)):
        out.append(out[parents[j]] @ rotmats[:, j])
    return torch.stack(out, dim=1)


def bone_lengths(joints: Tensor, parents: Sequence[int]) -> Tensor:
    """(B, J-1) lengths of the bones joint j ← parent(j), j = 1..J-1."""
    idx = list(range(1, len(parents)))
    return torch.linalg.vector_norm(joints[:, idx] - joints[:, [parents[j] for j in idx]], dim=-1)


@torch.no_grad()
def matrix_joint_stats(matrices: Tensor) -> Dict[str, np.ndarray]:
    """Per-joint statistics of (N, J, 3, 3) training-time matrices: ``sv_mean`` (J, 3) and ``sv_p5`` (J, 3)
    (singular values, descending, s3 signed: negative where det < 0), ``det_neg_frac`` (J,),
    ``proj_cond_median`` / ``proj_cond_p95`` (J,) of the Procrustes condition number ((s1+s2)/(s2+s3);
    infinite or negative values — at or beyond the det < 0 discontinuity — count as +inf)."""
    if matrices.ndim != 4 or matrices.shape[-2:] != (3, 3):
        raise ValueError(f"expected (N, J, 3, 3) matrices, got {tuple(matrices.shape)}")
    s = signed_singular_values(matrices.detach().double())  # (N, J, 3)
    denom = s[..., 1] + s[..., 2]
    cond = torch.where(denom > 0, (s[..., 0] + s[..., 1]) / denom.clamp(min=1e-300),
                       torch.full_like(denom, float("inf")))
    q = lambda x, p: torch.quantile(x, p, dim=0)  # noqa: E731
    return {
        "sv_mean": s.mean(dim=0).cpu().numpy(),
        "sv_p5": q(s, 0.05).cpu().numpy(),
        "det_neg_frac": (s[..., 2] < 0).double().mean(dim=0).cpu().numpy(),
        "proj_cond_median": q(cond, 0.5).cpu().numpy(),
        "proj_cond_p95": q(cond, 0.95).cpu().numpy(),
    }


@torch.no_grad()
def scale_by_depth(matrices: Tensor, parents: Sequence[int]) -> np.ndarray:
    """Mean scale |det G_j|^(1/3) of the world matrices, grouped by chain depth (index = depth)."""
    world = world_matrices(matrices.detach().double(), parents)
    scale = torch.linalg.det(world).abs().pow(1.0 / 3.0).mean(dim=0).cpu().numpy()  # (J,)
    depth = chain_depths(parents)
    return np.array([scale[depth == d].mean() for d in range(depth.max() + 1)])


def bone_ratio_by_depth(pred_joints: Tensor, gt_joints: Tensor, parents: Sequence[int]) -> np.ndarray:
    """Mean ratio predicted / GT bone length, grouped by the chain depth of the bone's child joint (index d =
    depth d, entry 0 is NaN-free: the root has no bone and gets ratio 1)."""
    ratio = (bone_lengths(pred_joints, parents) / bone_lengths(gt_joints, parents).clamp(min=1e-6)).mean(0)
    depth = chain_depths(parents)[1:]
    out = [1.0] + [float(ratio[torch.as_tensor(depth == d)].mean()) for d in range(1, depth.max() + 1)]
    return np.array(out)


def bone_length_error(pred_joints: Tensor, gt_joints: Tensor, parents: Sequence[int]) -> Tensor:
    """Per-sample mean absolute bone-length error (B,), in the joints' units."""
    return (bone_lengths(pred_joints, parents) - bone_lengths(gt_joints, parents)).abs().mean(dim=-1)


def point_gap(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample mean Euclidean distance (B,) between two (B, N, 3) point sets in the same frame (no
    alignment: both meshes come from the same camera and the same model origin)."""
    if a.shape != b.shape:
        raise ValueError(f"point sets differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return torch.linalg.vector_norm(a - b, dim=-1).mean(dim=-1)


@torch.no_grad()
def training_log_stats(body_model, train_rotmats: Tensor, inference_rotmats: Tensor, betas: Tensor,
                       gt_pose: Optional[Tensor] = None, gt_betas: Optional[Tensor] = None,
                       has_pose: Optional[Tensor] = None) -> Dict[str, float]:
    """Cheap scalars for the training log (joints only, no skinning): worst-joint singular values, det < 0
    fraction, joint gap (mm) between training-time and inference-time skeletons, deepest-chain scale and,
    where GT pose is labelled, the bone-length error (mm) of the training-time skeleton."""
    stats = matrix_joint_stats(train_rotmats)
    parents = body_model.parents
    j_train = kinematic_joints(body_model, train_rotmats.detach(), betas.detach())
    j_inf = kinematic_joints(body_model, inference_rotmats.detach(), betas.detach())
    depth_scale = scale_by_depth(train_rotmats, parents)
    record = {
        "gap_sv_min_p5": float(stats["sv_p5"][:, 2].min()),
        "gap_sv_mean_min": float(stats["sv_mean"][:, 2].mean()),
        "gap_det_neg_frac": float(stats["det_neg_frac"].mean()),
        "gap_joints_mm": 1000.0 * float(point_gap(j_train, j_inf).mean()),
        "gap_scale_deepest": float(depth_scale[-1]),
    }
    if gt_pose is not None and has_pose is not None and bool((has_pose > 0).any()):
        rows = has_pose > 0
        gt = kinematic_joints(body_model, gt_pose[rows],
                              None if gt_betas is None else gt_betas[rows, :body_model.num_betas])
        record["gap_bone_error_mm"] = 1000.0 * float(bone_length_error(j_train[rows], gt, parents).mean())
    return record


def gap_report(parents: Sequence[int], train_rotmats: Tensor, train_joints: Tensor,
               inference_joints: Tensor, train_vertices: Optional[Tensor] = None,
               inference_vertices: Optional[Tensor] = None, gt_joints: Optional[Tensor] = None,
               gt_mask: Optional[Tensor] = None) -> Dict:
    """Everything issue 9 asks for, for N predictions: scalar ``metrics`` (mm) and ``per_joint`` /
    ``per_depth`` lists (JSON-ready). ``*_joints`` are kinematic joints (N, J, 3) in metres; ``gt_joints``
    (N, J, 3) the GT kinematic joints, used where ``gt_mask`` (N,) is set (all rows when None)."""
    stats = matrix_joint_stats(train_rotmats)
    metrics = {
        "inference_gap_mpjpe_mm": 1000.0 * float(point_gap(train_joints, inference_joints).mean()),
        "train_sv_min_mean": float(stats["sv_mean"][:, 2].mean()),
        "train_sv_min_p5": float(stats["sv_p5"][:, 2].min()),
        "train_det_neg_frac": float(stats["det_neg_frac"].mean()),
        "train_proj_cond_p95": float(np.max(stats["proj_cond_p95"])),
    }
    if train_vertices is not None and inference_vertices is not None:
        metrics["inference_gap_pve_mm"] = 1000.0 * float(point_gap(train_vertices, inference_vertices).mean())
    per_depth = {"world_scale": scale_by_depth(train_rotmats, parents).tolist()}
    rows = None if gt_joints is None else (torch.ones(len(gt_joints), dtype=torch.bool) if gt_mask is None
                                           else torch.as_tensor(gt_mask).bool())
    if rows is not None and bool(rows.any()):
        gt = gt_joints[rows]
        for name, joints in (("train", train_joints[rows]), ("inference", inference_joints[rows])):
            metrics[f"{name}_bone_error_mm"] = 1000.0 * float(bone_length_error(joints, gt, parents).mean())
            per_depth[f"{name}_bone_ratio"] = bone_ratio_by_depth(joints, gt, parents).tolist()
    per_joint = {k: np.asarray(v).round(5).tolist() for k, v in stats.items()}
    return {"metrics": metrics, "per_joint": per_joint, "per_depth": per_depth,
            "depth_of_joint": chain_depths(parents).tolist()}
