"""The shared image-dataset machinery: annotation → (read image, augment, crop) → item dict.

Readers subclass :class:`ImageDataset` and implement ``__len__`` and ``annotation(i)``; everything else
(augmentation, crop, CLIFF bbox info, skip-and-count of unreadable images) lives here, so every reader yields
the same item contract (``docs/architecture.md``):

``img`` (3, H, W) ImageNet-normalised crop, ``center`` (2) and ``scale`` () of the bbox on the (virtual,
augmented) full frame, ``focal`` () and ``img_size`` (2 = h, w) in pixels, ``bbox_info`` (3) (CLIFF Eq. 5),
``keypoints_2d`` (K, 3) full-frame pixels + confidence, ``joints_3d`` (K3, 4) metres + confidence (as in the
source: SPIN files are pelvis-centred, FreiHAND is centred on the wrist here), ``pose`` (J, 3, 3) camera-frame
rotations (joint 0 = global orientation), ``betas`` (10), ``has_pose``, ``has_betas``, ``has_3d``, ``gender``
(0 male, 1 female, −1 unknown/neutral), ``index``, ``valid`` (0 for an unreadable image kept in place in eval
mode). Body sets add ``openpose_2d`` (25, 3); hand sets add ``vertices`` (778, 3) and ``has_vertices``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from hmr.body.joint_sets import get_joint_set
from hmr.data import augment as aug
from hmr.data.crop import (apply_affine, compose_affine, crop_matrix, inplane_transform, normalize_image,
                           warp_image)
from hmr.data.image import ImageReadError, read_image
from hmr.data.skips import SkipCounter
from hmr.geometry.camera import bbox_info, default_focal

logger = logging.getLogger(__name__)
GENDER_CODES = {"m": 0, "male": 0, "f": 1, "female": 1}


class DatasetLayoutError(FileNotFoundError):
    """A dataset is missing or incomplete; the message names the expected layout."""


@dataclass
class Annotation:
    """One sample's raw annotation (NumPy, metres, full-frame pixels) before augmentation."""

    image_path: Path
    center: np.ndarray
    scale: float
    keypoints_2d: np.ndarray
    joints_3d: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    has_pose: float = 0.0
    has_betas: float = 0.0
    has_3d: float = 0.0
    gender: int = -1
    focal: Optional[float] = None
    img_size: Optional[Tuple[int, int]] = None
    extra_2d: Dict[str, np.ndarray] = field(default_factory=dict)   # e.g. openpose_2d (25, 3)
    vertices: Optional[np.ndarray] = None


@dataclass
class DatasetOptions:
    """Per-dataset behaviour shared by all readers."""

    crop_hw: Tuple[int, int] = (256, 192)
    augment: bool = False
    augment_cfg: aug.AugmentConfig = field(default_factory=aug.AugmentConfig)
    on_bad_image: str = "substitute"   # "substitute": next readable sample; "flag": keep slot, valid = 0
    max_substitutions: int = 32


class ImageDataset(Dataset):
    """Base class: subclasses set the class attributes and implement ``__len__`` and ``annotation``."""

    kind: str = "body"                  # "body" or "hand"
    keypoint_set: str = "spin24"        # joint set of keypoints_2d / joints_3d
    pose_set: str = "smpl24"            # joint set of pose
    extra_2d_sets: Dict[str, str] = {"openpose_2d": "openpose25"}
    num_vertices: int = 0               # > 0: items carry vertices / has_vertices
    can_flip: bool = True

    def __init__(self, name: str, options: DatasetOptions) -> None:
        if options.on_bad_image not in ("substitute", "flag"):
            raise ValueError(f"on_bad_image must be 'substitute' or 'flag', got {options.on_bad_image!r}")
        self.name = name
        self.options = options
        self.skips = SkipCounter(name)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def annotation(self, index: int) -> Annotation:  # pragma: no cover - abstract
        """The raw annotation of sample ``index``."""
        raise NotImplementedError

    @property
    def skipped(self) -> int:
        """Unreadable images met since the last ``reset_skipped()``."""
        return self.skips.count

    def reset_skipped(self) -> None:
        """Reset the unreadable-image counter."""
        self.skips.reset()

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} with {n} samples")
        index %= n
        tries = 1 if self.options.on_bad_image == "flag" else min(n, self.options.max_substitutions)
        for attempt in range(tries):
            j = (index + attempt) % n
            ann = self.annotation(j)
            try:
                image = read_image(ann.image_path)
            except ImageReadError as exc:
                self.skips.record(str(ann.image_path), str(exc))
                if self.options.on_bad_image == "flag":
                    return self.make_item(j, None, ann)
                continue
            return self.make_item(j, image, ann)
        raise RuntimeError(f"{self.name}: {tries} consecutive unreadable images starting at sample {index} "
                           f"(last: {ann.image_path}); check the dataset folder")

    def make_item(self, index: int, image: Optional[np.ndarray], ann: Annotation) -> Dict[str, torch.Tensor]:
        """Augment and crop one sample (``image`` None: an all-zero crop flagged ``valid = 0``)."""
        opts = self.options
        if image is not None:
            h, w = image.shape[:2]
        elif ann.img_size is not None:
            h, w = ann.img_size
        else:
            h, w = opts.crop_hw
        focal = float(ann.focal) if ann.focal else default_focal(h, w)
        if opts.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
            params = aug.sample_params(opts.augment_cfg, rng, allow_flip=self.can_flip)
        else:
            rng, params = None, aug.AugmentParams()

        full2d, lin3 = inplane_transform(params.rot_deg, params.flip, (w / 2.0, h / 2.0))
        bbox_side = 200.0 * ann.scale
        center = apply_affine(np.asarray(ann.center, dtype=np.float64)[None], full2d)[0]
        center = center + np.asarray(params.trans) * bbox_side
        scale = ann.scale * params.scale_mult
        crop_affine = compose_affine(crop_matrix(center, scale, opts.crop_hw), full2d)
        crop = (warp_image(image, crop_affine, opts.crop_hw) if image is not None
                else np.zeros(tuple(opts.crop_hw) + (3,), dtype=np.uint8))
        # colour jitter folded into the normalisation table, then the occluder's noise (not jittered) pasted on
        jitter = aug.jitter_table(params.color_gain) if image is not None and rng is not None else None
        img = normalize_image(crop, jitter)
        if jitter is not None and params.occlusion is not None:
            rows, cols, noise = aug.occlusion_noise(crop.shape[:2], params.occlusion, rng)
            img[:, rows, cols] = normalize_image(noise)

        kp2d = self._flip(ann.keypoints_2d, self.keypoint_set, params.flip)
        joints = self._flip(ann.joints_3d, self.keypoint_set, params.flip)
        pose = ann.pose
        if params.flip:
            pose = aug.flip_pose(pose, get_joint_set(self.pose_set).flip)
        pose = aug.rotate_global_orient(pose, aug.rotation_about_optical_axis(params.rot_deg))

        t = lambda x: torch.from_numpy(np.array(x, dtype=np.float32))  # noqa: E731 (a copy, rounded as torch does)
        center_t, scale_t, focal_t = t(center), t(scale), t(focal)
        img_size = t([h, w])
        item = {
            "img": img,
            "center": center_t, "scale": scale_t, "focal": focal_t, "img_size": img_size,
            "bbox_info": bbox_info(center_t[None], scale_t[None], focal_t[None], img_size[None])[0],
            "keypoints_2d": t(apply_affine(kp2d, full2d)),
            "joints_3d": t(aug.transform_points_3d(joints, lin3)),
            "pose": t(pose), "betas": t(ann.betas),
            "has_pose": t(ann.has_pose), "has_betas": t(ann.has_betas), "has_3d": t(ann.has_3d),
            "gender": torch.tensor(ann.gender, dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
            "valid": t(0.0 if image is None else 1.0),
        }
        for key, set_name in self.extra_2d_sets.items():
            item[key] = t(apply_affine(self._flip(ann.extra_2d[key], set_name, params.flip), full2d))
        if self.num_vertices:
            verts = ann.vertices if ann.vertices is not None else np.zeros((self.num_vertices, 3))
            item["vertices"] = t(aug.transform_points_3d(verts, lin3))
            item["has_vertices"] = t(0.0 if ann.vertices is None else 1.0)
        return item

    @staticmethod
    def _flip(points: np.ndarray, set_name: str, flip: bool) -> np.ndarray:
        return aug.flip_points(points, get_joint_set(set_name).flip) if flip else points


def check_file(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it exists, else :class:`DatasetLayoutError` naming the dataset's expected layout."""
    if not Path(path).exists():
        raise DatasetLayoutError(f"{dataset}: missing {path}.\nExpected layout:\n{layout}")
    return Path(path)


class EmptyDatasetError(ValueError):
    """A dataset split exists but holds no samples."""


def axis_angle_to_matrix_np(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle → (..., 3, 3) rotation matrices (scipy; float64)."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(rotvec, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(rotvec.shape[:-1] + (3, 3))
