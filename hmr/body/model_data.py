"""The arrays that define a body or hand model, read from official SMPL/MANO pickles or the open ``.npz`` files.

One layout for every source (numpy, float64 in memory):
``v_template`` (V, 3), ``shapedirs`` (V, 3, L), ``posedirs`` (P, V*3) or None (no pose correctives),
``J_regressor`` (J, V), ``weights`` (V, J), ``parents`` (J,), ``faces`` (F, 3), plus the keypoint sources:
``keypoint_vertices`` (name -> vertex id) and ``eval_regressor`` (17, V) for H36M-17 (bodies), or None.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from hmr.body import joint_sets
from hmr.utils.safe_pickle import load_model_pickle

PathLike = Union[str, os.PathLike]

# Public SMPL vertex ids of the OpenPose face/foot keypoints and the fingertips (smplx.vertex_ids['smplh']).
_SMPL_KEYPOINT_VERTEX_KEYS = {
    "nose": "nose", "r_eye": "reye", "l_eye": "leye", "r_ear": "rear", "l_ear": "lear",
    "l_big_toe": "LBigToe", "l_small_toe": "LSmallToe", "l_heel": "LHeel",
    "r_big_toe": "RBigToe", "r_small_toe": "RSmallToe", "r_heel": "RHeel",
    "l_thumb_tip": "lthumb", "l_index_tip": "lindex", "l_middle_tip": "lmiddle", "l_ring_tip": "lring",
    "l_pinky_tip": "lpinky", "r_thumb_tip": "rthumb", "r_index_tip": "rindex", "r_middle_tip": "rmiddle",
    "r_ring_tip": "rring", "r_pinky_tip": "rpinky",
}
HAND_TIP_NAMES = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")


@dataclass
class ModelData:
    """Everything a :class:`hmr.body.BodyModel` is built from (see the module docstring for shapes)."""

    name: str
    kind: str
    v_template: np.ndarray
    shapedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: Tuple[int, ...]
    faces: np.ndarray
    posedirs: Optional[np.ndarray] = None
    keypoint_vertices: Dict[str, int] = field(default_factory=dict)
    eval_regressor: Optional[np.ndarray] = None
    hand_pose_mean: Optional[np.ndarray] = None
    source: str = ""

    def validate(self) -> "ModelData":
        """Check shapes and ranges; raise ValueError naming what was expected."""
        num_verts, num_joints = self.v_template.shape[0], len(self.parents)
        expect = {
            "v_template": (self.v_template.shape, (num_verts, 3)),
            "shapedirs": (self.shapedirs.shape[:2], (num_verts, 3)),
            "J_regressor": (self.J_regressor.shape, (num_joints, num_verts)),
            "weights": (self.weights.shape, (num_verts, num_joints)),
        }
        for key, (got, want) in expect.items():
            if tuple(got) != tuple(want):
                raise ValueError(f"{self.source or self.name}: {key} has shape {tuple(got)}, expected {want}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.min() < 0 or self.faces.max() >= num_verts:
            raise ValueError(f"{self.source or self.name}: faces must be (F, 3) vertex ids in [0, {num_verts})")
        if self.posedirs is not None and self.posedirs.shape != ((num_joints - 1) * 9, num_verts * 3):
            raise ValueError(f"{self.source or self.name}: posedirs has shape {self.posedirs.shape}, "
                             f"expected {((num_joints - 1) * 9, num_verts * 3)}")
        if self.kind not in ("body", "hand"):
            raise ValueError(f"kind must be 'body' or 'hand', got {self.kind!r}")
        return self


def _parents_from_kintree(kintree_table: np.ndarray) -> Tuple[int, ...]:
    parents = np.asarray(kintree_table)[0].astype(np.int64)
    parents[0] = -1  # the root is stored as 2**32 - 1
    return tuple(int(p) for p in parents)


def _posedirs_or_none(posedirs: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """(V, 3, P) -> (P, V*3) as smplx does; None when absent or all zero (no pose correctives)."""
    if posedirs is None:
        return None
    posedirs = np.asarray(posedirs, dtype=np.float64)
    if not np.any(posedirs):
        return None
    return posedirs.reshape(-1, posedirs.shape[-1]).T.copy()


def _smpl_keypoint_vertices() -> Dict[str, int]:
    from smplx.vertex_ids import vertex_ids  # public vertex ids of the SMPL topology

    return {name: int(vertex_ids["smplh"][key]) for name, key in _SMPL_KEYPOINT_VERTEX_KEYS.items()}


def read_official_pickle(path: PathLike, name: str, num_betas: int = 10,
                         eval_regressor_path: Optional[PathLike] = None, how_to_get: str = "") -> ModelData:
    """Read an official SMPL (24 joints) or MANO (16 joints) pickle through the restricted unpickler.

    ``how_to_get`` ends the error message when the file is truncated or corrupt."""
    raw = load_model_pickle(path, hint=f"download it again: {how_to_get}") if how_to_get else load_model_pickle(path)
    missing = [k for k in ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f") if k not in raw]
    if missing:
        raise ValueError(f"{path}: not an SMPL/MANO model file (missing keys {missing})")
    parents = _parents_from_kintree(raw["kintree_table"])
    kind = {24: "body", 16: "hand"}.get(len(parents))
    if kind is None:
        raise ValueError(f"{path}: expected 24 (SMPL) or 16 (MANO) joints, found {len(parents)}")
    shapedirs = np.asarray(raw["shapedirs"], dtype=np.float64)
    if shapedirs.shape[-1] < num_betas:
        raise ValueError(f"{path}: has {shapedirs.shape[-1]} shape components, {num_betas} requested")
    data = ModelData(
        name=name, kind=kind,
        v_template=np.asarray(raw["v_template"], dtype=np.float64),
        shapedirs=shapedirs[:, :, :num_betas],
        J_regressor=np.asarray(raw["J_regressor"], dtype=np.float64),
        weights=np.asarray(raw["weights"], dtype=np.float64),
        parents=parents,
        faces=np.asarray(raw["f"], dtype=np.int64),
        posedirs=_posedirs_or_none(raw.get("posedirs")),
        source=str(path),
    )
    num_verts = data.v_template.shape[0]
    if kind == "body":
        # The public keypoint vertex ids belong to SMPL's 6,890-vertex topology.
        data.keypoint_vertices = _smpl_keypoint_vertices() if num_verts == 6890 else {}
        if eval_regressor_path is not None and Path(eval_regressor_path).exists():
            data.eval_regressor = np.asarray(np.load(eval_regressor_path, allow_pickle=False), dtype=np.float64)
            if data.eval_regressor.shape != (17, data.v_template.shape[0]):
                raise ValueError(f"{eval_regressor_path}: expected shape (17, {data.v_template.shape[0]}), "
                                 f"got {data.eval_regressor.shape}")
    else:
        data.keypoint_vertices = (dict(zip(HAND_TIP_NAMES, joint_sets.MANO_FINGERTIP_VERTICES))
                                  if num_verts == 778 else {})
        if "hands_mean" in raw:
            data.hand_pose_mean = np.asarray(raw["hands_mean"], dtype=np.float64).reshape(-1, 3)
    return data.validate()


def read_open_npz(path: PathLike, name: str, num_betas: int = 10) -> ModelData:
    """Read an open model written by ``tools/build_body_models.py`` (no pickle involved)."""
    with np.load(path, allow_pickle=False) as npz:
        raw = {k: npz[k] for k in npz.files}
    shapedirs = raw["shapedirs"].astype(np.float64)
    if shapedirs.shape[-1] < num_betas:
        raise ValueError(f"{path}: has {shapedirs.shape[-1]} shape components, {num_betas} requested")
    eval_regressor = raw.get("eval_regressor")
    data = ModelData(
        name=name, kind=str(raw["kind"]),
        v_template=raw["v_template"].astype(np.float64),
        shapedirs=shapedirs[:, :, :num_betas],
        J_regressor=raw["J_regressor"].astype(np.float64),
        weights=raw["weights"].astype(np.float64),
        parents=tuple(int(p) for p in raw["parents"]),
        faces=raw["faces"].astype(np.int64),
        posedirs=_posedirs_or_none(raw.get("posedirs")),
        keypoint_vertices={str(k): int(v) for k, v in zip(raw["keypoint_names"], raw["keypoint_vertex_ids"])},
        eval_regressor=None if eval_regressor is None else eval_regressor.astype(np.float64),
        source=str(path),
    )
    return data.validate()
