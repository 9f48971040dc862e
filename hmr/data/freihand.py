"""FreiHAND (v2) in its official layout: ``{training,evaluation}_{K,xyz,verts,mano,scale}.json`` plus
``training/rgb/%08d.jpg`` (4 versions: image id = i + 32560·v) and ``evaluation/rgb/%08d.jpg``.

Keypoints are the 21 FreiHAND joints (wrist, thumb…pinky base→tip); 3D joints and vertices are centred on
the wrist here. ``_mano.json`` rows hold [0:48] axis-angle relative to MANO's ``hands_mean``
(flat_hand_mean=False), [48:58] betas: ``hands_mean`` (45,) must be given whenever poses are read from it (zeros
when the file's poses are absolute); without it the reader refuses the set rather than train on relative
rotations (``data.sets.<name>.hands_mean``, see :mod:`hmr.data.registry`). The project's synthetic
hand sets add ``<prefix>_extra.npz`` with ``rotmat`` (N, 16, 3, 3) absolute camera-frame rotations, used as
``pose`` when present, and a ``validation_*`` prefix for their val split (FreiHAND itself has none: val reads
``evaluation_*`` there).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from hmr.data.base import (Annotation, DatasetOptions, EmptyDatasetError, ImageDataset, axis_angle_to_matrix_np,
                           check_file)

logger = logging.getLogger(__name__)

FREIHAND_LAYOUT = """  <root>/training_K.json, training_xyz.json [, training_mano.json, training_verts.json]
  <root>/training/rgb/%08d.jpg            (id = index + N_annotations * version, versions 0..3)
  <root>/evaluation_K.json, evaluation_xyz.json [, evaluation_mano.json, evaluation_verts.json]
  <root>/evaluation/rgb/%08d.jpg"""
SPLIT_PREFIX = {"train": "training", "training": "training", "val": "validation", "validation": "validation",
                "test": "evaluation", "evaluation": "evaluation"}


def _read_json_array(path: Path, trailing: tuple, dataset: str) -> np.ndarray:
    with open(path) as handle:
        try:
            arr = np.asarray(json.load(handle), dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{dataset}: cannot parse {path}: {exc}") from exc
    if arr.ndim != len(trailing) + 1 or arr.shape[1:] != trailing:
        raise ValueError(f"{dataset}: {path} has shape {arr.shape}, expected (N,) + {trailing}")
    return arr


class FreiHANDDataset(ImageDataset):
    """FreiHAND training (by default every image version found on disk) or evaluation split."""

    kind = "hand"
    keypoint_set = "freihand21"
    pose_set = "mano16"
    extra_2d_sets: dict = {}
    num_vertices = 778
    can_flip = False   # a mirrored right hand is a left hand: not representable by the right-hand model

    def __init__(self, name: str, root: Union[str, Path], split: str, options: DatasetOptions,
                 versions: Optional[Sequence[int]] = None, load_vertices: Optional[bool] = None,
                 hands_mean: Optional[np.ndarray] = None, bbox_expand: float = 1.5) -> None:
        super().__init__(name, options)
        if split not in SPLIT_PREFIX:
            raise ValueError(f"{name}: unknown split {split!r}; use one of {sorted(SPLIT_PREFIX)}")
        root = check_file(Path(root), name, FREIHAND_LAYOUT)
        prefix = SPLIT_PREFIX[split]
        if prefix == "validation" and not (root / "validation_K.json").is_file():
            prefix = "evaluation"
        self.image_dir = check_file(root / prefix / "rgb", name, FREIHAND_LAYOUT)
        self.K = _read_json_array(check_file(root / f"{prefix}_K.json", name, FREIHAND_LAYOUT), (3, 3), name)
        self.xyz = _read_json_array(check_file(root / f"{prefix}_xyz.json", name, FREIHAND_LAYOUT), (21, 3), name)
        n = len(self.K)
        if n == 0:
            raise EmptyDatasetError(f"{name}: {prefix}_K.json holds no samples")
        if len(self.xyz) != n:
            raise ValueError(f"{name}: {prefix}_xyz.json has {len(self.xyz)} entries, {prefix}_K.json {n}")
        mano_path = root / f"{prefix}_mano.json"
        self.mano = _read_json_array(mano_path, (1, 61), name)[:, 0] if mano_path.is_file() else None
        verts_path = root / f"{prefix}_verts.json"
        load_vertices = (prefix != "training") if load_vertices is None else load_vertices
        self.verts = _read_json_array(verts_path, (778, 3), name) if load_vertices and verts_path.is_file() else None
        extra_path = root / f"{prefix}_extra.npz"
        self.rotmat = None
        if extra_path.is_file():
            with np.load(extra_path, allow_pickle=False) as extra:
                self.rotmat = extra["rotmat"].astype(np.float64) if "rotmat" in extra.files else None
        if self.rotmat is not None and self.rotmat.shape[1:] != (16, 3, 3):
            raise ValueError(f"{name}: {extra_path} rotmat has shape {self.rotmat.shape}, expected (N, 16, 3, 3)")
        for arr, what in ((self.mano, "mano"), (self.verts, "verts"), (self.rotmat, "extra.npz rotmat")):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name}: {prefix}_{what}.json has {len(arr)} entries, expected {n}")
        if versions is None:   # the image versions present (FreiHAND training has 4, other sets 1)
            versions = tuple(v for v in range(4) if (self.image_dir / f"{n * v:08d}.jpg").is_file()) or (0,)
        self.versions = tuple(int(v) for v in versions)
        if hands_mean is not None:
            hands_mean = np.asarray(hands_mean, dtype=np.float64).reshape(-1)
            if hands_mean.shape != (45,):
                raise ValueError(f"{name}: hands_mean must hold 45 numbers (15 joints x axis-angle), got "
                                 f"{hands_mean.size}")
        elif self.mano is not None and self.rotmat is None:
            raise ValueError(
                f"{name}: {mano_path} stores MANO poses relative to MANO's hands_mean (FreiHAND's "
                f"flat_hand_mean=False); say how to read them: data.sets.{name}.hands_mean = mano-right (the mean of "
                f"body_models/mano/MANO_RIGHT.pkl), a .npy file / list with those 45 numbers, or 'flat' if this "
                "set's poses are already absolute")
        self.hands_mean = hands_mean
        self.bbox_expand = bbox_expand
        self.num_annotations = n

    def __len__(self) -> int:
        return self.num_annotations * len(self.versions)

    def annotation(self, index: int) -> Annotation:
        version = self.versions[index // self.num_annotations]
        i = index % self.num_annotations
        K, xyz = self.K[i].astype(np.float64), self.xyz[i].astype(np.float64)
        uvw = xyz @ K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        pose = np.tile(np.eye(3), (16, 1, 1))
        betas = np.zeros(10)
        if self.mano is not None:
            aa = self.mano[i, :48].astype(np.float64).reshape(16, 3)
            if self.hands_mean is not None:
                aa[1:] += self.hands_mean.reshape(15, 3)
            pose, betas = axis_angle_to_matrix_np(aa), self.mano[i, 48:58].astype(np.float64)
        if self.rotmat is not None:
            pose = self.rotmat[i]
        root = xyz[0]
        return Annotation(
            image_path=self.image_dir / f"{i + self.num_annotations * version:08d}.jpg",
            center=(lo + hi) / 2.0, scale=float(self.bbox_expand * max((hi - lo).max(), 1.0) / 200.0),
            keypoints_2d=np.concatenate([uv, np.ones((21, 1))], axis=1),
            joints_3d=np.concatenate([xyz - root, np.ones((21, 1))], axis=1),
            pose=pose, betas=betas, has_pose=float(self.mano is not None or self.rotmat is not None),
            has_betas=float(self.mano is not None),
            has_3d=1.0, focal=float(0.5 * (K[0, 0] + K[1, 1])),
            vertices=None if self.verts is None else self.verts[i].astype(np.float64) - root)
