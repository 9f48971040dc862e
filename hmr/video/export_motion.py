"""One track as a BVH motion file and as a ``.npz`` time series in smplx's parameter names.

BVH: the body model's kinematic tree (joint names of its joint set), rest offsets from the track's shape, the
root with six channels (absolute position, then ``Zrotation Xrotation Yrotation``) and every other joint with the
three rotation channels; Euler angles in degrees, intrinsic Z-X-Y (``R = Rz Rx Ry``, the order BVH readers
apply the listed channels in); metres; y up (the OpenCV camera frame turned 180 degrees about x, as in the
glTF export). ``Frame Time`` is the median frame interval; a variable frame rate's exact timestamps are in the
``.npz`` and the ``.glb``.

NPZ (camera frame, OpenCV axes, axis-angle): ``global_orient`` (T, 3), ``body_pose`` (T, 69) for SMPL-structured
models or ``hand_pose`` (T, 45) for MANO-structured ones (absolute, i.e. ``flat_hand_mean=True``), ``betas`` (B,)
held for the track, ``transl`` (T, 3), plus ``rotmats`` (T, J, 3, 3), ``frame_index``, ``timestamps`` (s),
``fps``, ``track_id``, ``body_model``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hmr.rotations import matrix_to_axis_angle
from hmr.utils.io import atomic_open, save_npz

OPENCV_TO_Y_UP = np.diag([1.0, -1.0, -1.0])   # 180 degrees about x


def rest_joints(body_model, betas: np.ndarray) -> np.ndarray:
    """(J, 3) rest-pose joint positions for ``betas`` (metres, model frame)."""
    J = body_model.num_joints
    with torch.no_grad():
        out = body_model(full_pose=torch.eye(3).expand(1, J, 3, 3).clone(),
                         betas=torch.as_tensor(np.asarray(betas), dtype=torch.float32)[None])
    return out.joints[0].double().numpy()


def write_track_bvh(path: Path, body_model, rotmats: np.ndarray, betas: np.ndarray, transl: np.ndarray,
                    timestamps: np.ndarray) -> Path:
    """Write one track (``rotmats`` (T, J, 3, 3) local rotations, camera frame; ``transl`` (T, 3))."""
    rotmats = np.asarray(rotmats, dtype=np.float64)
    T, J = rotmats.shape[:2]
    C = OPENCV_TO_Y_UP
    joints = rest_joints(body_model, betas) @ C.T
    parents = body_model.parents
    names = body_model.joint_set.names
    children: List[List[int]] = [[c for c in range(J) if parents[c] == j] for j in range(J)]
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        offset = np.zeros(3) if parents[j] < 0 else joints[j] - joints[parents[j]]
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "CHANNELS 6 Xposition Yposition Zposition" if parents[j] < 0 else "CHANNELS 3"
        lines.append(f"{pad}  {channels} Zrotation Xrotation Yrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            end_site = ["End Site", "{", "  OFFSET 0.000000 0.000000 0.000000", "}"]
            lines.extend(f"{pad}  {line}" for line in end_site)
        lines.append(f"{pad}}}")

    root = [j for j in range(J) if parents[j] < 0]
    if len(root) != 1:
        raise ValueError(f"a BVH skeleton needs one root joint, the model has {len(root)}")
    emit(root[0], 0)
    order = []   # the channel order of the motion lines: depth-first, as emitted
    stack = [root[0]]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    local = C[None, None] @ rotmats @ C.T[None, None]          # the same rotations in the y-up frame
    euler = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler("ZXY", degrees=True).reshape(T, J, 3)
    position = (rest_joints(body_model, betas)[root[0]][None] + np.asarray(transl, dtype=np.float64)) @ C.T
    times = np.asarray(timestamps, dtype=np.float64)
    frame_time = float(np.median(np.diff(times))) if T > 1 else 1.0 / 30
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {frame_time:.6f}"]
    for t in range(T):
        values = list(position[t]) + [v for j in order for v in euler[t, j]]
        lines.append(" ".join(f"{v:.6f}" for v in values))
    with atomic_open(Path(path), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return Path(path)


def write_track_npz(path: Path, body_model, rotmats: np.ndarray, betas: np.ndarray, transl: np.ndarray,
                    timestamps: np.ndarray, frames: np.ndarray, track_id: int,
                    raw: Optional[Dict[str, np.ndarray]] = None) -> Path:
    """Write one track's parameters in smplx's names (see the module docstring); ``raw``: extra arrays (e.g. the
    unsmoothed per-frame parameters) stored under their own names."""
    rotmats = np.asarray(rotmats, dtype=np.float64)
    T, J = rotmats.shape[:2]
    aa = matrix_to_axis_angle(torch.as_tensor(rotmats)).numpy()          # (T, J, 3)
    times = np.asarray(timestamps, dtype=np.float64)
    arrays = {
        "global_orient": aa[:, 0], "betas": np.asarray(betas, dtype=np.float64), "transl": np.asarray(transl),
        "rotmats": rotmats, "frame_index": np.asarray(frames, dtype=np.int64), "timestamps": times,
        "fps": np.asarray(1.0 / np.median(np.diff(times)) if T > 1 else 0.0), "track_id": np.asarray(track_id),
        "body_model": np.asarray(body_model.name),
    }
    arrays["hand_pose" if body_model.kind == "hand" else "body_pose"] = aa[:, 1:].reshape(T, -1)
    arrays.update(raw or {})
    save_npz(path, **arrays)
    return Path(path)
