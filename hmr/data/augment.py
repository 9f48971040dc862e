"""Training augmentation: parameter sampling, flip (joint permutation + pose mirroring), in-plane rotation of
keypoints / 3D joints / global orientation, colour jitter and synthetic occlusion.

Geometry is exact on the virtual full frame (see :mod:`hmr.data.crop`): a flip mirrors the scene
(x → −x in the camera frame, every rotation R → M R M with M = diag(−1, 1, 1), left/right joints swapped) and a
rotation turns the scene about the optical axis (global orientation R_root → R_z R_root). Defaults follow SPIN
(scale ±25 %, rotation N(0, 30°) clipped to ±60° with probability 0.6, flip 0.5, channel noise ±40 %).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from hmr.data.crop import MIRROR_X


@dataclass
class AugmentConfig:
    """Augmentation switches and magnitudes (``data.augment`` in the config)."""

    scale_factor: float = 0.25      # bbox scale multiplied by clip(1 + N(0, sf), 1 − sf, 1 + sf)
    rot_factor: float = 30.0        # degrees: clip(N(0, rf), −2rf, 2rf) ...
    rot_prob: float = 0.6           # ... applied with this probability
    trans_factor: float = 0.0       # bbox centre moved by U(−tf, tf) · bbox side, per axis
    flip_prob: float = 0.5
    color_factor: float = 0.4       # per-channel gain U(1 − cf, 1 + cf)
    occlusion_prob: float = 0.0     # one random noise rectangle per crop with this probability
    occlusion_size: Tuple[float, float] = (0.1, 0.4)  # side as a fraction of the crop side

    @classmethod
    def from_mapping(cls, cfg: Optional[Mapping[str, Any]]) -> "AugmentConfig":
        """Build from a config mapping; unknown keys are an error naming the known ones."""
        cfg = dict(cfg or {})
        known = set(asdict(cls()))
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown data.augment keys {sorted(unknown)}; known: {sorted(known)}")
        if "occlusion_size" in cfg:
            cfg["occlusion_size"] = tuple(cfg["occlusion_size"])
        return cls(**cfg)


@dataclass
class AugmentParams:
    """One draw of augmentation parameters (identity by default)."""

    flip: bool = False
    rot_deg: float = 0.0
    scale_mult: float = 1.0
    trans: Tuple[float, float] = (0.0, 0.0)
    color_gain: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    occlusion: Optional[Tuple[float, float, float, float]] = None  # x0, y0, w, h as fractions of the crop
    extra: dict = field(default_factory=dict)


def sample_params(cfg: AugmentConfig, rng: np.random.Generator, allow_flip: bool = True) -> AugmentParams:
    """Draw augmentation parameters (SPIN-style distributions)."""
    flip = bool(allow_flip and rng.uniform() < cfg.flip_prob)
    rot = 0.0
    if cfg.rot_factor > 0 and rng.uniform() < cfg.rot_prob:
        rot = float(np.clip(rng.normal() * cfg.rot_factor, -2 * cfg.rot_factor, 2 * cfg.rot_factor))
    sf = cfg.scale_factor
    scale = float(np.clip(1.0 + rng.normal() * sf, 1.0 - sf, 1.0 + sf)) if sf > 0 else 1.0
    tf = cfg.trans_factor
    trans = tuple(rng.uniform(-tf, tf, size=2)) if tf > 0 else (0.0, 0.0)
    cf = cfg.color_factor
    gain = tuple(rng.uniform(1.0 - cf, 1.0 + cf, size=3)) if cf > 0 else (1.0, 1.0, 1.0)
    occlusion = None
    if cfg.occlusion_prob > 0 and rng.uniform() < cfg.occlusion_prob:
        w, h = rng.uniform(*cfg.occlusion_size, size=2)
        occlusion = (float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h)), float(w), float(h))
    return AugmentParams(flip=flip, rot_deg=rot, scale_mult=scale, trans=trans, color_gain=gain,
                         occlusion=occlusion)


def flip_points(points: np.ndarray, permutation: Sequence[int]) -> np.ndarray:
    """Swap left/right rows of (K, C) points by the joint set's flip permutation (values untouched)."""
    if len(permutation) != points.shape[0]:
        raise ValueError(f"flip permutation has {len(permutation)} entries for {points.shape[0]} points")
    return points[list(permutation)]


def flip_pose(pose: np.ndarray, permutation: Sequence[int]) -> np.ndarray:
    """Mirror a full pose (J, 3, 3): swap left/right joints and conjugate every rotation with diag(−1, 1, 1)
    (axis-angle (x, y, z) → (x, −y, −z)). Applying it twice gives the input back."""
    if pose.shape[1:] != (3, 3) or len(permutation) != pose.shape[0]:
        raise ValueError(f"pose must be (J, 3, 3) with a J-entry permutation, got {pose.shape}, {len(permutation)}")
    return MIRROR_X @ pose[list(permutation)] @ MIRROR_X


def transform_points_3d(points: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Apply the camera-frame 3×3 map from :func:`hmr.data.crop.inplane_transform` to (K, ≥3) points."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :3] = points[:, :3] @ linear.T
    return out


def rotate_global_orient(pose: np.ndarray, rot3: np.ndarray) -> np.ndarray:
    """Pre-multiply joint 0 (the global orientation) of a (J, 3, 3) pose by a rotation."""
    out = np.array(pose, copy=True)
    out[0] = rot3 @ pose[0]
    return out


def jitter_table(gain: Sequence[float]) -> np.ndarray:
    """(256, 3) uint8: every value's per-channel multiplicative noise, clipped and truncated as a float32
    product (what :func:`color_jitter` applies)."""
    values = np.arange(256, dtype=np.float32)[:, None] * np.asarray(gain, dtype=np.float32)[None]
    return np.clip(values, 0, 255).astype(np.uint8)


def color_jitter(image: np.ndarray, gain: Sequence[float]) -> np.ndarray:
    """Per-channel multiplicative noise on an HxWx3 uint8 image (clipped to [0, 255])."""
    if tuple(gain) == (1.0, 1.0, 1.0):
        return image
    return cv2.LUT(np.ascontiguousarray(image), jitter_table(gain).reshape(256, 1, 3))


def occlusion_noise(shape: Tuple[int, int], box: Tuple[float, float, float, float], rng: np.random.Generator
                    ) -> Tuple[slice, slice, np.ndarray]:
    """(rows, columns, uniform uint8 noise) of the rectangle ``box`` (fractions of the crop: x0, y0, w, h)."""
    h, w = shape
    x0, y0 = int(box[0] * w), int(box[1] * h)
    x1, y1 = max(x0 + 1, int((box[0] + box[2]) * w)), max(y0 + 1, int((box[1] + box[3]) * h))
    rows, cols = slice(y0, min(y1, h)), slice(x0, min(x1, w))
    size = (rows.stop - rows.start, cols.stop - cols.start, 3)
    return rows, cols, rng.integers(0, 256, size=size, dtype=np.uint8)


def occlude(image: np.ndarray, box: Optional[Tuple[float, float, float, float]],
            rng: np.random.Generator) -> np.ndarray:
    """Paste a uniform-noise rectangle (fractions of the crop: x0, y0, w, h) over an HxWx3 uint8 crop."""
    if box is None:
        return image
    rows, cols, noise = occlusion_noise(image.shape[:2], box, rng)
    out = image.copy()
    out[rows, cols] = noise
    return out


def rotation_about_optical_axis(rot_deg: float) -> np.ndarray:
    """The 3×3 rotation that matches an image rotation by ``rot_deg`` (see :func:`hmr.data.crop.inplane_transform`)."""
    a = np.deg2rad(rot_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


__all__: List[str] = [
    "AugmentConfig", "AugmentParams", "sample_params", "flip_points", "flip_pose", "transform_points_3d",
    "rotate_global_orient", "jitter_table", "color_jitter", "occlusion_noise", "occlude",
    "rotation_about_optical_axis",
]
