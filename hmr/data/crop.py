"""Crop geometry: the full-frame in-plane transform (flip, rotation) and the bbox crop, as 2×3 affine maps.

Augmentation acts on a *virtual full frame*: the original image flipped about the principal point's vertical
line and rotated about the principal point. Both are exact images of a 3D transform of the scene (mirror
x → −x, rotation about the optical axis), so full-frame keypoints, 3D joints and the global orientation stay
consistent (see :func:`inplane_transform`). The crop is then cut around the (moved) bbox centre; the crop
content equals SPIN's rotation about the bbox centre. Image and points go through the *same* matrix.

Crop boxes: the bbox side ``b = 200 * scale`` spans the crop height; the width is ``b * W / H`` (256×192 crops
see a b × 0.75b box, 224×224 crops a b × b box).
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def inplane_transform(rot_deg: float, flip: bool, principal_point: Tuple[float, float]
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """The full-frame 2D map (2×3) and the matching camera-frame 3×3 linear map for flip-then-rotate.

    2D: flip x → 2 p_x − x, then rotate by ``rot_deg`` about p (counter-clockwise as displayed, like
    ``cv2.getRotationMatrix2D``). 3D: mirror diag(−1, 1, 1), then the rotation about the optical axis
    [[c, s, 0], [−s, c, 0], [0, 0, 1]] — so projecting the mapped 3D points gives the mapped 2D points exactly.
    """
    a = np.deg2rad(rot_deg)
    c, s = np.cos(a), np.sin(a)
    rot2 = np.array([[c, s], [-s, c]])
    flip2 = np.diag([-1.0, 1.0]) if flip else np.eye(2)
    lin2 = rot2 @ flip2
    p = np.asarray(principal_point, dtype=np.float64)
    affine = np.concatenate([lin2, (p - lin2 @ p)[:, None]], axis=1)
    lin3 = np.eye(3)
    lin3[:2, :2] = rot2
    if flip:
        lin3 = lin3 @ MIRROR_X
    return affine, lin3


def crop_matrix(center: np.ndarray, scale: float, out_hw: Tuple[int, int]) -> np.ndarray:
    """2×3 map from full-frame pixels to crop pixels for a box of side ``200*scale`` (height) at ``center``."""
    if scale <= 0:
        raise ValueError(f"bbox scale must be positive, got {scale}")
    out_h, out_w = out_hw
    k = out_h / (200.0 * scale)
    return np.array([[k, 0.0, out_w / 2.0 - k * center[0]], [0.0, k, out_h / 2.0 - k * center[1]]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2×3 affine ``outer ∘ inner`` (apply ``inner`` first)."""
    bottom = np.array([[0.0, 0.0, 1.0]])
    return (np.vstack([outer, bottom]) @ np.vstack([inner, bottom]))[:2]


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to the first two columns of ``points`` (K, ≥2); other columns are kept."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :2] = points[:, :2] @ affine[:, :2].T + affine[:, 2]
    return out


def warp_image(image: np.ndarray, affine: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """Warp an HxWx3 uint8 image with a 2×3 full-frame→crop affine into an ``out_hw`` crop (black border)."""
    out_h, out_w = out_hw
    return cv2.warpAffine(image, affine.astype(np.float64), (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# Every uint8 value's normalised float32, per channel: ((v / 255) - mean) / std evaluated in float32 exactly as
# the direct formula does, so a table look-up gives the same numbers ~3x faster (tools/bench_data.py).
_NORMALIZE_TABLE = ((np.arange(256, dtype=np.float32)[None] / 255.0 - IMAGENET_MEAN[:, None])
                    / IMAGENET_STD[:, None]).astype(np.float32)


def normalize_image(image: np.ndarray, jitter: Optional[np.ndarray] = None) -> torch.Tensor:
    """HxWx3 uint8 RGB → (3, H, W) float32 normalised with the ImageNet mean/std; ``jitter`` ((256, 3) uint8,
    :func:`hmr.data.augment.jitter_table`) is applied first, folded into the same look-up."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    tables = _NORMALIZE_TABLE if jitter is None else np.stack([_NORMALIZE_TABLE[c][jitter[:, c]] for c in range(3)])
    out = np.empty((3,) + image.shape[:2], dtype=np.float32)
    for c in range(3):
        np.take(tables[c], image[..., c], out=out[c])
    return torch.from_numpy(out)


def denormalize_image(img: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_image` (for visualisation): (3, H, W) → HxWx3 uint8 RGB."""
    x = img.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def to_crop_coordinates(keypoints: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                        crop_hw: Tuple[int, int]) -> torch.Tensor:
    """Full-frame pixels (B, K, 2+) → crop coordinates normalised to [−1, 1] over the bbox side (B, K, 2)."""
    b = (200.0 * scale).reshape(-1, 1, 1)
    return 2.0 * (keypoints[..., :2] - center.reshape(-1, 1, 2)) / b
