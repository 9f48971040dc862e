"""Which keypoint sets a model can provide, and where each keypoint comes from.

Every keypoint is read from one of three sources, concatenated in this order:
the kinematic joints (J), the model's keypoint vertices (``ModelData.keypoint_vertices``, in insertion order)
and the rows of the H36M-17 evaluation regressor applied to the vertices (when the model has one).
A :class:`KeypointRecipe` is the index of each keypoint of a set into that concatenation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from hmr.body import joint_sets as js
from hmr.body.model_data import HAND_TIP_NAMES, ModelData

# OpenPose-25 joints taken from SMPL kinematic joints (SPIN's convention: neck = SMPL neck, mid-hip = pelvis).
_OPENPOSE_FROM_SMPL = {
    "neck": "neck", "mid_hip": "pelvis",
    **{f"{s}_{j}": f"{s}_{j}" for s in ("l", "r") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")},
}


@dataclass(frozen=True)
class KeypointRecipe:
    """``index[i]``: position of keypoint i of set ``name`` in [joints, keypoint vertices, regressor rows]."""

    name: str
    index: Tuple[int, ...]
    uses_regressor: bool


def keypoint_recipes(data: ModelData) -> Dict[str, KeypointRecipe]:
    """All keypoint sets that ``data`` can provide, by joint-set name."""
    num_joints = len(data.parents)
    vertex_names = list(data.keypoint_vertices)
    vertex_slot = {n: num_joints + i for i, n in enumerate(vertex_names)}
    regressor_offset = num_joints + len(vertex_names)
    has_regressor = data.eval_regressor is not None
    recipes: Dict[str, KeypointRecipe] = {}

    def add(name: str, index: Optional[List[int]], uses_regressor: bool = False) -> None:
        if index is not None and len(index) == len(js.get_joint_set(name)):
            recipes[name] = KeypointRecipe(name, tuple(index), uses_regressor)

    def vertex(name: str) -> Optional[int]:
        return vertex_slot.get(name)

    if data.kind == "body":
        smpl = js.SMPL_24
        add("smpl24", list(range(num_joints)))
        op_index = []
        for name in js.OPENPOSE_25.names:
            slot = smpl.index(_OPENPOSE_FROM_SMPL[name]) if name in _OPENPOSE_FROM_SMPL else vertex(name)
            op_index.append(slot)
        add("openpose25", None if None in op_index else op_index)
        if has_regressor:
            add("h36m17", [regressor_offset + i for i in range(17)], True)
            add("lsp14", [regressor_offset + i for i in js.LSP14_FROM_H36M17], True)
            spin = [regressor_offset + h if h is not None else vertex(n)
                    for h, n in zip(js.SPIN24_FROM_H36M17, js.SPIN_24.names)]
            add("spin24", None if None in spin else spin, True)
    else:
        add("mano16", list(range(num_joints)))
        tips = [vertex(n) for n in HAND_TIP_NAMES]
        if None not in tips:
            mano21 = list(range(num_joints)) + tips
            add("freihand21", [mano21[i] for i in js.FREIHAND21_FROM_MANO21])
    return recipes
