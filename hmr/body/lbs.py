"""Linear blend skinning (SMPL, Loper et al. 2015, Eq. 1-4), written as a small functional core.

Rotations are taken as given: any (B, J, 3, 3) matrices, orthogonal or not, flow through unchanged, so an
unorthogonalized "pseudo rotation matrix" (PRoM) is differentiated exactly as it is. The results equal
``smplx.lbs.lbs(..., pose2rot=False)`` on the same arrays; the differences are only in how the work is done:

- joints at rest are linear in the betas, so ``J_regressor @ v_shaped`` is replaced by precomputed
  ``joints_template + betas @ joint_shapedirs`` (no (J x V) product per sample);
- the kinematic chain is evaluated one depth level at a time (9 batched products for SMPL, 4 for MANO)
  instead of one joint at a time;
- the pose-corrective product is skipped when a model has no pose blend shapes (the open models);
- skinning blends (3 x 4) transforms with one GEMM and applies them with one batched (3 x 4)(4 x 1) product.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch


@dataclass(frozen=True)
class KinematicLevels:
    """The joints grouped by depth: ``levels[d]`` lists the joints at depth d, ``parent_slot[d]`` the position
    of each one's parent inside level d-1, and ``order_inverse`` maps joint index -> position in the
    concatenation of all levels."""

    levels: Tuple[Tuple[int, ...], ...]
    parent_slot: Tuple[Tuple[int, ...], ...]
    order_inverse: Tuple[int, ...]


def kinematic_levels(parents: Sequence[int]) -> KinematicLevels:
    """Group a kinematic tree (``parents[0] == -1``, parents precede children) into depth levels."""
    parents = [int(p) for p in parents]
    if not parents or parents[0] != -1 or any(p < 0 or p >= i for i, p in enumerate(parents[1:], start=1)):
        raise ValueError(f"expected a tree with root 0 (parent -1) and every parent before its child, got {parents}")
    depth = [0] * len(parents)
    for joint in range(1, len(parents)):
        depth[joint] = depth[parents[joint]] + 1
    levels = [tuple(j for j in range(len(parents)) if depth[j] == d) for d in range(max(depth) + 1)]
    parent_slot = [()] + [tuple(levels[d - 1].index(parents[j]) for j in levels[d]) for d in range(1, len(levels))]
    order = [j for level in levels for j in level]
    order_inverse = [0] * len(order)
    for position, joint in enumerate(order):
        order_inverse[joint] = position
    return KinematicLevels(tuple(levels), tuple(parent_slot), tuple(order_inverse))


def shape_blend(template: torch.Tensor, shapedirs_flat: torch.Tensor, betas: Optional[torch.Tensor]) -> torch.Tensor:
    """``template + betas @ shapedirs``: template (N, 3), shapedirs_flat (L, N*3), betas (B, l <= L) -> (B, N, 3)."""
    if betas is None:
        return template.unsqueeze(0)
    flat = torch.addmm(template.reshape(1, -1), betas, shapedirs_flat[: betas.shape[1]])
    return flat.view(betas.shape[0], -1, 3)


def rigid_transforms(
    rotations: torch.Tensor, joints: torch.Tensor, tree: KinematicLevels, parents: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics. rotations (B, J, 3, 3) local (joint 0 global), joints (B, J, 3) at rest.

    Returns the posed joints (B, J, 3) and the skinning transforms (B, J, 3, 4) that map rest positions to posed
    ones: world rotation G_j and translation t_j - G_j J_j (SMPL Eq. 3-4).
    """
    offsets = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parents[1:]]], dim=1)
    level_rot: List[torch.Tensor] = []
    level_pos: List[torch.Tensor] = []
    for depth, level in enumerate(tree.levels):
        idx = list(level)
        local_rot = rotations[:, idx]
        local_off = offsets[:, idx]
        if depth == 0:
            world_rot, world_pos = local_rot, local_off
        else:
            slot = list(tree.parent_slot[depth])
            parent_rot = level_rot[-1][:, slot]
            world_rot = parent_rot @ local_rot
            world_pos = (parent_rot @ local_off.unsqueeze(-1)).squeeze(-1) + level_pos[-1][:, slot]
        level_rot.append(world_rot)
        level_pos.append(world_pos)
    inverse = list(tree.order_inverse)
    world_rot = torch.cat(level_rot, dim=1)[:, inverse]
    world_pos = torch.cat(level_pos, dim=1)[:, inverse]
    translation = world_pos - (world_rot @ joints.unsqueeze(-1)).squeeze(-1)
    return world_pos, torch.cat([world_rot, translation.unsqueeze(-1)], dim=-1)


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint (3 x 4) transforms with weights (V, J) and apply them to vertices (B, V, 3)."""
    batch, num_joints = transforms.shape[:2]
    num_verts = vertices.shape[1]
    blended = torch.matmul(weights, transforms.reshape(batch, num_joints, 12)).view(batch * num_verts, 3, 4)
    homogeneous = torch.cat([vertices, vertices.new_ones(batch, num_verts, 1)], dim=-1).view(-1, 4, 1)
    return torch.bmm(blended, homogeneous).view(batch, num_verts, 3)


def pose_feature(rotations: torch.Tensor) -> torch.Tensor:
    """SMPL pose-corrective feature: (R_j - I) for the non-root joints, flattened (B, (J-1)*9)."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - eye).reshape(rotations.shape[0], -1)


def linear_blend_skinning(
    rotations: torch.Tensor,
    betas: Optional[torch.Tensor],
    v_template: torch.Tensor,
    shapedirs_flat: torch.Tensor,
    joints_template: torch.Tensor,
    joint_shapedirs_flat: torch.Tensor,
    weights: torch.Tensor,
    tree: KinematicLevels,
    parents: torch.Tensor,
    posedirs: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Posed vertices (B, V, 3) and joints (B, J, 3) from rotations (B, J, 3, 3) and betas (B, l) or None.

    ``posedirs`` is (P, V*3) as in smplx (None: no pose correctives).
    """
    batch = rotations.shape[0]
    v_shaped = shape_blend(v_template, shapedirs_flat, betas)
    rest_joints = shape_blend(joints_template, joint_shapedirs_flat, betas)
    if posedirs is not None:
        v_shaped = v_shaped + (pose_feature(rotations) @ posedirs).view(batch, -1, 3)
    v_shaped = v_shaped.expand(batch, -1, -1)
    rest_joints = rest_joints.expand(batch, -1, -1)
    posed_joints, transforms = rigid_transforms(rotations, rest_joints, tree, parents)
    return skin(v_shaped, weights, transforms), posed_joints
