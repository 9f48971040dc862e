"""SPIN/CLIFF-style npz sets (COCO, MPII, LSPet, MPI-INF-3DHP, Human3.6M protocol files, the synthetic body set).

Keys (see ``shared/reference/datasets-and-metrics.md``): ``imgname`` (N,) relative to the image root,
``center`` (N, 2), ``scale`` (N,) = bbox side / 200 — required; ``part`` (N, 24, 3) SPIN-24 2D keypoints,
``S`` (N, 24, 4) metres, ``pose`` (N, 72) axis-angle or ``rotmat`` (N, 24, 3, 3), ``shape`` (N, 10),
``has_smpl`` (N,), ``openpose`` (N, 25, 3), ``gender`` (N,) 'm'/'f', ``focal_l`` (N,) or ``K`` (N, 3, 3),
``img_size`` (N, 2) = (h, w) — optional: a missing key is zero-filled and flagged absent.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Union

import numpy as np

from hmr.data.base import (GENDER_CODES, Annotation, DatasetOptions, EmptyDatasetError, ImageDataset,
                           axis_angle_to_matrix_np, check_file)

logger = logging.getLogger(__name__)

SPIN_NPZ_LAYOUT = """  <npz file>  with keys imgname (N,), center (N,2), scale (N,)
               [+ part, S, pose|rotmat, shape, has_smpl, openpose, gender, focal_l|K, img_size]
  <image root>/<imgname>  the images named in imgname"""

_EXPECTED_TRAILING = {"center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,),
                      "rotmat": (24, 3, 3), "shape": None, "has_smpl": (), "openpose": (25, 3),
                      "focal_l": (), "K": (3, 3), "img_size": (2,)}


def load_npz_checked(path: Path) -> Dict[str, np.ndarray]:
    """Load a SPIN-style npz into memory and check the shapes of the keys it has."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read npz file {path}: {exc}") from exc
    for key in ("imgname", "center", "scale"):
        if key not in arrays:
            raise ValueError(f"{path}: required key {key!r} is missing (keys: {sorted(arrays)})")
    n = len(arrays["imgname"])
    for key, trailing in _EXPECTED_TRAILING.items():
        if key not in arrays:
            continue
        arr = arrays[key]
        if arr.shape[0] != n or (trailing is not None and arr.shape[1:] != trailing):
            want = (n,) + trailing if trailing is not None else f"({n}, ...)"
            raise ValueError(f"{path}: key {key!r} has shape {arr.shape}, expected {want}")
    return arrays


class SpinNpzDataset(ImageDataset):
    """A SPIN/CLIFF npz annotation file plus an image root."""

    def __init__(self, name: str, npz_path: Union[str, Path], image_root: Union[str, Path],
                 options: DatasetOptions) -> None:
        super().__init__(name, options)
        npz_path = check_file(Path(npz_path), name, SPIN_NPZ_LAYOUT)
        self.image_root = check_file(Path(image_root), name, SPIN_NPZ_LAYOUT)
        data = load_npz_checked(npz_path)
        n = len(data["imgname"])
        if n == 0:
            raise EmptyDatasetError(f"{name}: {npz_path} holds no samples")
        self.imgname = data["imgname"].astype(str)
        self.center = data["center"].astype(np.float64)
        self.scale = data["scale"].astype(np.float64).reshape(n)
        if (self.scale <= 0).any():
            raise ValueError(f"{npz_path}: 'scale' must be positive (bbox side / 200)")
        self.part = data.get("part", np.zeros((n, 24, 3))).astype(np.float64)
        self.S = data.get("S", np.zeros((n, 24, 4))).astype(np.float64)
        self.has_3d = (self.S[..., 3] > 0).any(axis=1).astype(np.float64) if "S" in data else np.zeros(n)
        self.openpose = data.get("openpose", np.zeros((n, 25, 3))).astype(np.float64)
        self.rotmat = data["rotmat"].astype(np.float64) if "rotmat" in data else None
        self.pose_aa = data["pose"].astype(np.float64) if "pose" in data else None
        has_params = "rotmat" in data or "pose" in data
        self.has_smpl = (data["has_smpl"].astype(np.float64) if "has_smpl" in data
                         else np.full(n, 1.0 if has_params else 0.0))
        if not has_params:
            self.has_smpl = np.zeros(n)
        shape = data.get("shape", np.zeros((n, 10))).astype(np.float64)
        self.betas = np.zeros((n, 10))
        self.betas[:, :min(10, shape.shape[1])] = shape[:, :10]
        self.has_betas = self.has_smpl if "shape" in data else np.zeros(n)
        self.gender = np.array([GENDER_CODES.get(str(g).strip().lower(), -1) for g in data["gender"]]
                               if "gender" in data else np.full(n, -1), dtype=np.int64)
        if "focal_l" in data:
            self.focal = data["focal_l"].astype(np.float64).reshape(n)
        elif "K" in data:
            self.focal = 0.5 * (data["K"][:, 0, 0] + data["K"][:, 1, 1]).astype(np.float64)
        else:
            self.focal = None
        self.img_size = data["img_size"].astype(np.int64) if "img_size" in data else None
        logger.info("%s: %d samples from %s", name, n, npz_path)

    def __len__(self) -> int:
        return len(self.imgname)

    def annotation(self, index: int) -> Annotation:
        if self.rotmat is not None:
            pose = self.rotmat[index]
        elif self.pose_aa is not None:
            pose = axis_angle_to_matrix_np(self.pose_aa[index].reshape(24, 3))
        else:
            pose = np.tile(np.eye(3), (24, 1, 1))
        return Annotation(
            image_path=self.image_root / self.imgname[index], center=self.center[index],
            scale=float(self.scale[index]), keypoints_2d=self.part[index], joints_3d=self.S[index],
            pose=pose, betas=self.betas[index], has_pose=float(self.has_smpl[index]),
            has_betas=float(self.has_betas[index]), has_3d=float(self.has_3d[index]),
            gender=int(self.gender[index]),
            focal=None if self.focal is None else float(self.focal[index]),
            img_size=None if self.img_size is None else tuple(int(v) for v in self.img_size[index]),
            extra_2d={"openpose_2d": self.openpose[index]})
