"""Keypoints of one joint set straight from pose and shape, without skinning a mesh.

Fitting evaluates the model hundreds of times but needs only K keypoints. SMPL kinematic joints need no
vertices; a keypoint read from vertices — a picked vertex (OpenPose feet, fingertips) or a regressor row
(H36M-17, LSP-14, SPIN-24) — is a fixed weighted sum of skinned vertices, and skinning is linear in the
per-joint transforms, so the sum collapses: k_r = Σ_j T_j m_rj with m_rj = Σ_v W_rv w_vj [v_v; 1] precomputed
(linear in β, and in the pose feature for models with pose correctives). One (B, R, J, 4) × (B, J, 3, 4)
product replaces skinning the ~2.6k vertices the H36M regressor touches (or all 6,890).

:class:`KeypointModel` finds where each keypoint comes from through :meth:`BodyModel.keypoints` itself (probing
it with marked inputs), so its output equals ``body_model.keypoints(...)`` (a unit test checks it). A set the
model cannot provide directly may still be served by name from one it can (e.g. ``coco18`` from
``openpose25``: every COCO-18 joint name is an OpenPose-25 joint name).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from hmr.body import joint_sets
from hmr.body.lbs import kinematic_levels, pose_feature, shape_blend


def resolve_keypoint_set(body_model, set_name: str) -> Tuple[str, Optional[List[int]]]:
    """(provided set, index map or None): ``set_name`` itself when the model provides it, else a provided set
    containing every joint name of ``set_name`` and the indices of those names in it. KeyError otherwise."""
    provided = body_model.keypoint_sets()
    if set_name in provided:
        return set_name, None
    wanted = joint_sets.get_joint_set(set_name).names
    for source in provided:
        names = joint_sets.get_joint_set(source).names
        if set(wanted) <= set(names):
            return source, [names.index(n) for n in wanted]
    raise KeyError(f"{body_model.name} cannot provide keypoint set {set_name!r} (directly or by joint names); "
                   f"available: {provided}")


def _probe_sources(body_model, set_name: str) -> Tuple[List[int], List[int], List[int]]:
    """Per keypoint of ``set_name``: (joint index or -1, keypoint-vertex index or -1, regressor row or -1)."""
    J, V = body_model.num_joints, body_model.num_vertices
    dtype = body_model.v_template.dtype
    marks = torch.zeros(1, J, 3, dtype=dtype)
    marks[0, :, 0] = torch.arange(1, J + 1, dtype=dtype)
    from_joints = body_model.keypoints(torch.zeros(1, V, 3, dtype=dtype), marks, set_name)[0, :, 0]
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand(1, V, 3, generator=gen, dtype=torch.float64).to(dtype) + 1.0
    from_vertices = body_model.keypoints(probe, torch.zeros(1, J, 3, dtype=dtype), set_name)[0]
    picks = probe[0, body_model.keypoint_vertex_ids]
    rows = (body_model.eval_regressor.to(dtype) @ probe[0] if body_model.eval_regressor is not None
            else torch.zeros(0, 3, dtype=dtype))
    joint_idx, vertex_idx, row_idx = [], [], []
    for k in range(from_joints.shape[0]):
        j = int(round(float(from_joints[k]))) - 1
        v = r = -1
        if j < 0:
            close = lambda table: ((table - from_vertices[k]).abs().max(dim=-1).values < 1e-5).nonzero()  # noqa: E731
            hits = close(picks)
            if len(hits):
                v = int(hits[0])
            else:
                hits = close(rows)
                if not len(hits):
                    raise RuntimeError(f"cannot locate the source of keypoint {k} of {set_name} in {body_model.name}")
                r = int(hits[0])
        joint_idx.append(j)
        vertex_idx.append(v)
        row_idx.append(r)
    return joint_idx, vertex_idx, row_idx


class KeypointModel(nn.Module):
    """Keypoints (B, K, 3) of ``set_name`` in the model frame from rotations (B, J, 3, 3) and betas (B, L),
    without skinning a mesh (see the module docstring). Buffers follow ``body_model``'s device and dtype."""

    def __init__(self, body_model, set_name: str) -> None:
        super().__init__()
        self.set_name = set_name
        self.num_joints = J = body_model.num_joints
        source, name_map = resolve_keypoint_set(body_model, set_name)
        joint_idx, vertex_idx, row_idx = _probe_sources(body_model, source)
        if name_map is not None:
            joint_idx, vertex_idx, row_idx = ([lst[i] for i in name_map] for lst in (joint_idx, vertex_idx, row_idx))
        self.source_set = source
        tree = kinematic_levels(body_model.parents)
        self._levels = [torch.as_tensor(level) for level in tree.levels]
        self._slots = [torch.as_tensor(slot) for slot in tree.parent_slot]
        self._order_inverse = torch.as_tensor(tree.order_inverse)
        self._parents = torch.as_tensor((0,) + tuple(body_model.parents[1:]))
        V, L, dt = body_model.num_vertices, body_model.num_betas, body_model.v_template.dtype
        # every vertex-based keypoint is a row of vertex weights W (R, V): one-hot for picked vertices
        rows, index = [], []
        for j, v, r in zip(joint_idx, vertex_idx, row_idx):
            if j >= 0:
                index.append(j)
                continue
            if v >= 0:
                row = torch.zeros(V, dtype=torch.float64)
                row[int(body_model.keypoint_vertex_ids[v])] = 1.0
            else:
                row = body_model.eval_regressor[r].double()
            index.append(J + len(rows))
            rows.append(row)
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long), persistent=False)
        self.register_buffer("joints_template", body_model.joints_template, persistent=False)
        self.register_buffer("joint_shapedirs_flat", body_model.joint_shapedirs_flat, persistent=False)
        self.num_vertex_rows = len(rows)
        self.has_pose_correctives = body_model.posedirs is not None
        if rows:
            # k_r = Σ_v W_rv Σ_j w_vj T_j [v_v; 1] = Σ_j T_j m_rj with m_rj = Σ_v W_rv w_vj [v_v; 1] (SMPL Eq. 4
            # summed by the regressor); v_v is linear in β (and in the pose feature), so m_rj is too
            W = torch.stack(rows)                                                    # (R, V)
            WW = W[:, :, None] * body_model.weights.double()[None]                   # (R, V, J)
            shapedirs = body_model.shapedirs_flat.double().T.reshape(V, 3, L)
            self.register_buffer("m_template", torch.cat([
                torch.einsum("rvj,vc->rjc", WW, body_model.v_template.double()), WW.sum(1)[..., None]], -1).to(dt),
                persistent=False)                                                    # (R, J, 4)
            self.register_buffer("m_shapedirs", torch.einsum("rvj,vcl->rjcl", WW, shapedirs).to(dt),
                                 persistent=False)                                   # (R, J, 3, L)
            posedirs = None
            if self.has_pose_correctives:
                P = body_model.posedirs.shape[0]
                posedirs = torch.einsum("rvj,vcp->rjcp", WW,
                                        body_model.posedirs.double().T.reshape(V, 3, P)).to(dt)
            self.register_buffer("m_posedirs", posedirs, persistent=False)          # (R, J, 3, P) or None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def world_transforms(self, rotations: Tensor, rest: Tensor) -> Tensor:
        """Forward kinematics (SMPL Eq. 3) as (B, J, 4, 4) world transforms of the joints, one batched product
        per tree depth (fewer, larger operations than ``hmr.body.lbs.rigid_transforms``; same result)."""
        offsets = torch.cat([rest[:, :1], rest[:, 1:] - rest[:, self._parents[1:]]], dim=1)
        local = torch.cat([rotations, offsets[..., None]], dim=-1)
        bottom = local.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(local.shape[0], local.shape[1], 1, 4)
        local = torch.cat([local, bottom], dim=-2)
        world = [local[:, self._levels[0]]]
        for depth in range(1, len(self._levels)):
            world.append(world[-1][:, self._slots[depth]] @ local[:, self._levels[depth]])
        return torch.cat(world, dim=1)[:, self._order_inverse]

    def forward(self, rotations: Tensor, betas: Optional[Tensor]) -> Tensor:
        """(B, K, 3) keypoints, model origin (no translation)."""
        batch = rotations.shape[0]
        rest = shape_blend(self.joints_template, self.joint_shapedirs_flat, betas).expand(batch, -1, -1)
        world = self.world_transforms(rotations, rest)
        joints = world[..., :3, 3]
        if not self.num_vertex_rows:
            return joints.index_select(1, self.index)
        # skinning transforms [G_j | t_j − G_j J_j] (SMPL Eq. 4)
        rot = world[..., :3, :3]
        transforms = torch.cat([rot, (joints - (rot @ rest[..., None])[..., 0])[..., None]], dim=-1)
        m = self.m_template.expand(batch, -1, -1, -1)
        shift = 0.0
        if betas is not None:
            shift = torch.einsum("rjcl,bl->brjc", self.m_shapedirs[..., :betas.shape[1]], betas)
        if self.m_posedirs is not None:
            shift = shift + torch.einsum("rjcp,bp->brjc", self.m_posedirs, pose_feature(rotations))
        if betas is not None or self.m_posedirs is not None:
            m = m + torch.cat([shift, shift.new_zeros(shift.shape[:-1] + (1,))], dim=-1)
        vertex_keypoints = torch.einsum("bjcd,brjd->brc", transforms, m)
        return torch.cat([joints, vertex_keypoints], dim=1).index_select(1, self.index)
