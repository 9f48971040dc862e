"""3DPW from the official ``sequenceFiles/{train,validation,test}/*.pkl`` and ``imageFiles/<seq>/image_%05d.jpg``.

SPIN's preprocessing: keep frames whose ``campose_valid`` is set; bbox from the ``poses2d`` points with
confidence > 0, ``scale = 1.2 * max(w, h) / 200``; the global orientation is rotated into the camera frame
(R_root ← R_cam R_root). Items carry SMPL ``pose``/``betas``/``gender`` (the evaluation builds the GT mesh from
them with the gendered model) and the OpenPose detections as ``openpose_2d``; 3DPW has no SPIN-24 2D/3D
keypoints, so ``keypoints_2d``/``joints_3d`` have zero confidence and ``has_3d`` = 0.
Pickles are read with a NumPy-only unpickler (:mod:`hmr.utils.safe_pickle`), never plain ``pickle.load``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from hmr.body.joint_sets import COCO_18_NAMES, OPENPOSE_25_NAMES
from hmr.data.base import (GENDER_CODES, Annotation, DatasetOptions, EmptyDatasetError, ImageDataset,
                           axis_angle_to_matrix_np, check_file)
from hmr.utils.safe_pickle import load_numpy_pickle

logger = logging.getLogger(__name__)

PW3D_LAYOUT = """  <root>/sequenceFiles/{train,validation,test}/<sequence>.pkl   (official 3DPW pickles)
  <root>/imageFiles/<sequence>/image_%05d.jpg"""
SPLIT_FOLDER = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
REQUIRED_KEYS = ("sequence", "genders", "betas", "poses", "poses2d", "cam_poses", "campose_valid", "img_frame_ids")
OPENPOSE25_FROM_COCO18 = [OPENPOSE_25_NAMES.index(name) for name in COCO_18_NAMES]


class PW3DDataset(ImageDataset):
    """One 3DPW split; one sample per (sequence, actor, valid frame)."""

    def __init__(self, name: str, root: Union[str, Path], split: str, options: DatasetOptions,
                 bbox_expand: float = 1.2, use_intrinsics: bool = False) -> None:
        super().__init__(name, options)
        if split not in SPLIT_FOLDER:
            raise ValueError(f"{name}: unknown split {split!r}; use one of {sorted(SPLIT_FOLDER)}")
        root = check_file(Path(root), name, PW3D_LAYOUT)
        seq_dir = check_file(root / "sequenceFiles" / SPLIT_FOLDER[split], name, PW3D_LAYOUT)
        self.image_root = root / "imageFiles"
        files = sorted(seq_dir.glob("*.pkl"))
        if not files:
            raise EmptyDatasetError(f"{name}: no .pkl files in {seq_dir}.\nExpected layout:\n{PW3D_LAYOUT}")
        rows: Dict[str, List] = {k: [] for k in ("path", "center", "scale", "pose", "cam_rot", "betas", "gender",
                                                 "openpose", "focal", "sequence", "frame", "actor")}
        self.dropped_frames = 0
        for path in files:
            self._add_sequence(path, rows, bbox_expand, use_intrinsics)
        if not rows["path"]:
            raise EmptyDatasetError(f"{name}: no valid frames in {seq_dir}")
        self.paths = rows["path"]
        self.sequences, self.frames, self.actors = rows["sequence"], rows["frame"], rows["actor"]
        self.center = np.asarray(rows["center"])
        self.scale = np.asarray(rows["scale"])
        self.pose_aa = np.asarray(rows["pose"])
        self.cam_rot = np.asarray(rows["cam_rot"])
        self.betas = np.asarray(rows["betas"])
        self.gender = np.asarray(rows["gender"], dtype=np.int64)
        self.openpose = np.asarray(rows["openpose"])
        self.focal = rows["focal"]
        logger.info("%s: %d samples from %d sequences (%d frames without enough 2D points dropped)",
                    name, len(self.paths), len(files), self.dropped_frames)

    def _add_sequence(self, path: Path, rows: Dict[str, List], bbox_expand: float, use_intrinsics: bool) -> None:
        seq = load_numpy_pickle(path)
        if not isinstance(seq, dict):
            raise ValueError(f"{path}: expected a dict, got {type(seq).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in seq]
        if missing:
            raise ValueError(f"{path}: missing keys {missing} (3DPW sequence files need {list(REQUIRED_KEYS)})")
        name = str(seq["sequence"])
        cam_poses = np.asarray(seq["cam_poses"], dtype=np.float64)
        frame_ids = np.asarray(seq["img_frame_ids"]).astype(np.int64)
        focal = None
        if use_intrinsics and "cam_intrinsics" in seq:
            K = np.asarray(seq["cam_intrinsics"], dtype=np.float64)
            focal = 0.5 * (K[0, 0] + K[1, 1])
        for actor in range(len(seq["poses"])):
            poses = np.asarray(seq["poses"][actor], dtype=np.float64)
            poses2d = np.asarray(seq["poses2d"][actor], dtype=np.float64)
            valid = np.asarray(seq["campose_valid"][actor]).astype(bool)
            if poses.shape[1:] != (72,) or poses2d.shape[1:] != (3, 18):
                raise ValueError(f"{path}: actor {actor} has poses {poses.shape} / poses2d {poses2d.shape}, "
                                 "expected (N, 72) / (N, 3, 18)")
            betas = np.zeros(10)
            b = np.asarray(seq["betas"][actor], dtype=np.float64).reshape(-1)[:10]
            betas[:len(b)] = b
            gender = GENDER_CODES.get(str(seq["genders"][actor]).strip().lower(), -1)
            for i in np.flatnonzero(valid):
                kp = poses2d[i].T  # (18, 3): x, y, conf
                visible = kp[kp[:, 2] > 0, :2]
                if len(visible) < 2:
                    self.dropped_frames += 1
                    continue
                lo, hi = visible.min(axis=0), visible.max(axis=0)
                openpose = np.zeros((25, 3))
                openpose[OPENPOSE25_FROM_COCO18] = kp
                rows["path"].append(self.image_root / name / f"image_{frame_ids[i]:05d}.jpg")
                rows["center"].append((lo + hi) / 2.0)
                rows["scale"].append(bbox_expand * max((hi - lo).max(), 1.0) / 200.0)
                rows["pose"].append(poses[i])
                rows["cam_rot"].append(cam_poses[i, :3, :3])
                rows["betas"].append(betas)
                rows["gender"].append(gender)
                rows["openpose"].append(openpose)
                rows["focal"].append(focal)
                rows["sequence"].append(name)
                rows["frame"].append(int(frame_ids[i]))
                rows["actor"].append(actor)

    def __len__(self) -> int:
        return len(self.paths)

    def sample_info(self, index: int) -> Dict[str, Union[str, int]]:
        """Sequence name, frame id and actor of a sample (for per-sample result files)."""
        return {"sequence": self.sequences[index], "frame": self.frames[index], "actor": self.actors[index]}

    def annotation(self, index: int) -> Annotation:
        pose = axis_angle_to_matrix_np(self.pose_aa[index].reshape(24, 3))
        pose[0] = self.cam_rot[index] @ pose[0]
        return Annotation(
            image_path=self.paths[index], center=self.center[index], scale=float(self.scale[index]),
            keypoints_2d=np.zeros((24, 3)), joints_3d=np.zeros((24, 4)), pose=pose, betas=self.betas[index],
            has_pose=1.0, has_betas=1.0, has_3d=0.0, gender=int(self.gender[index]), focal=self.focal[index],
            extra_2d={"openpose_2d": self.openpose[index]})
