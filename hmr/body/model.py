"""One differentiable body/hand model (SMPL- or MANO-structured) for official and open model files."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import roma
import torch
from torch import nn

from hmr.body import joint_sets
from hmr.body.keypoints import KeypointRecipe, keypoint_recipes
from hmr.body.lbs import kinematic_levels, linear_blend_skinning
from hmr.body.model_data import ModelData


@dataclass
class BodyOutput:
    """Posed mesh: ``vertices`` (B, V, 3), kinematic ``joints`` (B, J, 3), and the ``full_pose`` (B, J, 3, 3)
    matrices that were used (exactly the input matrices when matrices were given)."""

    vertices: torch.Tensor
    joints: torch.Tensor
    full_pose: torch.Tensor


def _as_matrices(value: torch.Tensor, num: int, what: str) -> torch.Tensor:
    """(B, num, 3, 3) matrices unchanged; axis-angle (B, num*3) or (B, num, 3) through Rodrigues."""
    shape = tuple(value.shape)
    if value.dim() == 4 and shape[1:] == (num, 3, 3):
        return value
    if num == 1 and value.dim() == 3 and shape[1:] == (3, 3):
        return value.unsqueeze(1)
    if value.dim() == 3 and shape[1:] == (num, 3):
        return roma.rotvec_to_rotmat(value)
    if value.dim() == 2 and shape[1] == num * 3:
        return roma.rotvec_to_rotmat(value.reshape(shape[0], num, 3))
    raise ValueError(f"{what}: expected (B, {num}, 3, 3) matrices or axis-angle (B, {num * 3}) / (B, {num}, 3), "
                     f"got shape {shape}")


class BodyModel(nn.Module):
    """SMPL/MANO-structured linear blend skinning model (see ``docs/architecture.md`` for the contract).

    Rotations are local joint rotations acting on column vectors, joint 0 being the global orientation; any
    3x3 matrices are accepted and used as given (gradients flow to every entry).
    """

    def __init__(self, data: ModelData, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        data.validate()
        self.name = data.name
        self.kind = data.kind
        self.source = data.source
        self.parents: Tuple[int, ...] = tuple(int(p) for p in data.parents)
        self.num_joints = len(self.parents)
        self.num_betas = int(data.shapedirs.shape[-1])
        self.num_vertices = int(data.v_template.shape[0])
        self.joint_set = joint_sets.SMPL_24 if self.kind == "body" else joint_sets.MANO_16
        if self.joint_set.parents != self.parents:
            raise ValueError(f"{data.source}: kinematic tree {self.parents} differs from {self.joint_set.name}'s")
        self._tree = kinematic_levels(self.parents)
        self._recipes: Dict[str, KeypointRecipe] = keypoint_recipes(data)
        self.keypoint_vertex_names: Tuple[str, ...] = tuple(data.keypoint_vertices)

        def buf(name: str, array: np.ndarray, dt: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array)).to(dt), persistent=False)

        joints_template = data.J_regressor @ data.v_template
        joint_shapedirs = np.einsum("jv,vcl->jcl", data.J_regressor, data.shapedirs)
        buf("v_template", data.v_template)
        buf("shapedirs_flat", data.shapedirs.reshape(-1, self.num_betas).T)
        buf("joints_template", joints_template)
        buf("joint_shapedirs_flat", joint_shapedirs.reshape(-1, self.num_betas).T)
        buf("J_regressor", data.J_regressor)
        buf("weights", data.weights)
        buf("faces", data.faces, torch.long)
        buf("parents_index", np.asarray(self.parents), torch.long)
        buf("keypoint_vertex_ids", np.asarray(list(data.keypoint_vertices.values()), dtype=np.int64), torch.long)
        self.has_pose_correctives = data.posedirs is not None
        self.posedirs: Optional[torch.Tensor]
        if data.posedirs is not None:
            buf("posedirs", data.posedirs)
        else:
            self.register_buffer("posedirs", None)
        self.eval_regressor: Optional[torch.Tensor]
        if data.eval_regressor is not None:
            buf("eval_regressor", data.eval_regressor)
        else:
            self.register_buffer("eval_regressor", None)
        pose_mean = data.hand_pose_mean if data.hand_pose_mean is not None else np.zeros((self.num_joints - 1, 3))
        buf("pose_mean", pose_mean)

    # ------------------------------------------------------------------ forward kinematics
    def forward(
        self,
        global_orient: Optional[torch.Tensor] = None,
        body_pose: Optional[torch.Tensor] = None,
        hand_pose: Optional[torch.Tensor] = None,
        betas: Optional[torch.Tensor] = None,
        transl: Optional[torch.Tensor] = None,
        full_pose: Optional[torch.Tensor] = None,
    ) -> BodyOutput:
        """Pose the model. Missing rotations are identity, missing betas zero (mean shape), missing transl zero.

        ``full_pose`` (B, J, 3, 3) or axis-angle (B, J*3) replaces ``global_orient`` and the body/hand pose.
        """
        local_pose = self._pick_local_pose(body_pose, hand_pose)
        batch = self._batch_size(global_orient, local_pose, betas, transl, full_pose)
        rotations = self._full_pose(global_orient, local_pose, full_pose, batch)
        if betas is not None:
            betas = betas.to(self.v_template.dtype)
            if betas.dim() != 2 or betas.shape[1] > self.num_betas:
                raise ValueError(f"betas: expected (B, <= {self.num_betas}), got {tuple(betas.shape)}")
        vertices, joints = linear_blend_skinning(
            rotations, betas, self.v_template, self.shapedirs_flat, self.joints_template, self.joint_shapedirs_flat,
            self.weights, self._tree, self.parents_index, self.posedirs)
        if transl is not None:
            transl = transl.to(vertices.dtype)
            if transl.shape != (batch, 3):
                raise ValueError(f"transl: expected ({batch}, 3), got {tuple(transl.shape)}")
            vertices = vertices + transl.unsqueeze(1)
            joints = joints + transl.unsqueeze(1)
        return BodyOutput(vertices=vertices, joints=joints, full_pose=rotations)

    def _pick_local_pose(self, body_pose: Optional[torch.Tensor],
                         hand_pose: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        wrong, right = ("hand_pose", "body_pose") if self.kind == "body" else ("body_pose", "hand_pose")
        if (hand_pose if self.kind == "body" else body_pose) is not None:
            raise ValueError(f"{self.name} is a {self.kind} model: pass {right}, not {wrong}")
        return body_pose if self.kind == "body" else hand_pose

    @staticmethod
    def _batch_size(*tensors: Optional[torch.Tensor]) -> int:
        sizes = {int(t.shape[0]) for t in tensors if t is not None}
        if len(sizes) > 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _full_pose(self, global_orient: Optional[torch.Tensor], local_pose: Optional[torch.Tensor],
                   full_pose: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        dtype, device = self.v_template.dtype, self.v_template.device
        if full_pose is not None:
            if global_orient is not None or local_pose is not None:
                raise ValueError("pass either full_pose or global_orient/body_pose/hand_pose, not both")
            return _as_matrices(full_pose.to(dtype), self.num_joints, "full_pose")
        eye = torch.eye(3, dtype=dtype, device=device)
        pose_name = "body_pose" if self.kind == "body" else "hand_pose"
        root = (eye.expand(batch, 1, 3, 3) if global_orient is None
                else _as_matrices(global_orient.to(dtype), 1, "global_orient"))
        rest = (eye.expand(batch, self.num_joints - 1, 3, 3) if local_pose is None
                else _as_matrices(local_pose.to(dtype), self.num_joints - 1, pose_name))
        return torch.cat([root, rest], dim=1)

    # ------------------------------------------------------------------ keypoints
    def keypoint_sets(self) -> List[str]:
        """Names of the joint sets :meth:`keypoints` can produce for this model."""
        return list(self._recipes)

    def num_keypoints(self, set_name: str) -> int:
        """How many keypoints joint set ``set_name`` has (0 when this model cannot provide it)."""
        recipe = self._recipes.get(set_name)
        return 0 if recipe is None else len(recipe.index)

    def keypoints(self, vertices: torch.Tensor, joints: torch.Tensor, set_name: str) -> torch.Tensor:
        """Keypoints (B, K, 3) of joint set ``set_name`` from a forward pass's vertices and joints."""
        recipe = self._recipes.get(set_name)
        if recipe is None:
            hint = (" (the H36M-17 regressor for official SMPL is read from body_models/smpl/J_regressor_h36m.npy)"
                    if self.kind == "body" and set_name in ("h36m17", "lsp14", "spin24") else "")
            raise KeyError(f"{self.name} cannot provide keypoint set {set_name!r}; available: "
                           f"{self.keypoint_sets()}{hint}")
        sources = [joints, vertices[:, self.keypoint_vertex_ids]]
        if recipe.uses_regressor:
            sources.append(torch.einsum("kv,bvc->bkc", self.eval_regressor.to(vertices.dtype), vertices))
        index = torch.as_tensor(recipe.index, device=vertices.device)
        return torch.cat(sources, dim=1).index_select(1, index)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, kind={self.kind!r}, joints={self.num_joints}, vertices={self.num_vertices}, "
                f"betas={self.num_betas}, pose_correctives={self.has_pose_correctives}")
