"""Cameras: perspective projection, CLIFF bounding-box information and the crop ↔ full-frame camera.

Conventions: OpenCV camera frame (x right, y down, z forward), pixels, principal point at the image centre
(w/2, h/2) unless an intrinsic matrix says otherwise. A crop is described by its bounding-box ``center``
(pixels) and ``scale`` = bbox side / 200 (SPIN/CLIFF), so the bbox side is ``b = 200 * scale``.
The crop camera is weak perspective ``(s, tx, ty)``: crop coordinates normalised to [-1, 1] over ``b`` are
``s * (X + tx), s * (Y + ty)``.
"""
from __future__ import annotations

from typing import Union

import torch

Number = Union[float, torch.Tensor]
_EPS = 1e-9


def default_focal(height: Number, width: Number) -> Number:
    """CLIFF's full-frame focal length estimate f = sqrt(h² + w²) (pixels)."""
    if isinstance(height, torch.Tensor) or isinstance(width, torch.Tensor):
        h = torch.as_tensor(height, dtype=torch.get_default_dtype())
        w = torch.as_tensor(width, dtype=h.dtype)
        return torch.sqrt(h * h + w * w)
    return float((float(height) ** 2 + float(width) ** 2) ** 0.5)


def camera_matrix(focal: torch.Tensor, img_size: torch.Tensor) -> torch.Tensor:
    """Intrinsics (B, 3, 3): focal ``focal`` (B,), principal point at the centre of ``img_size`` (B, 2 = h, w)."""
    focal = torch.as_tensor(focal)
    img_size = torch.as_tensor(img_size, dtype=focal.dtype)
    if img_size.shape[-1] != 2:
        raise ValueError(f"img_size must be (..., 2) = (h, w), got shape {tuple(img_size.shape)}")
    K = torch.zeros(focal.shape + (3, 3), dtype=focal.dtype, device=focal.device)
    K[..., 0, 0] = focal
    K[..., 1, 1] = focal
    K[..., 0, 2] = img_size[..., 1] / 2
    K[..., 1, 2] = img_size[..., 0] / 2
    K[..., 2, 2] = 1
    return K


def _safe_denominator(x: torch.Tensor) -> torch.Tensor:
    """x with |x| < eps replaced by ±eps (keeps the sign), so no division yields inf/NaN."""
    sign = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))
    return torch.where(x.abs() < _EPS, sign * _EPS, x)


def perspective_projection(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Project camera-frame points (..., N, 3) with intrinsics K (..., 3, 3) or (3, 3) to pixels (..., N, 2)."""
    if points.shape[-1] != 3:
        raise ValueError(f"points must be (..., N, 3), got shape {tuple(points.shape)}")
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (..., 3, 3), got shape {tuple(K.shape)}")
    projected = points @ K.transpose(-1, -2)
    return projected[..., :2] / _safe_denominator(projected[..., 2:3])


def bbox_info(center: torch.Tensor, scale: torch.Tensor, focal: torch.Tensor,
              img_size: torch.Tensor) -> torch.Tensor:
    """CLIFF Eq. 5: [cx − w/2, cy − h/2, b] / f, shape (B, 3). ``img_size`` is (B, 2) = (h, w)."""
    center = torch.as_tensor(center)
    scale = torch.as_tensor(scale, dtype=center.dtype)
    focal = torch.as_tensor(focal, dtype=center.dtype)
    img_size = torch.as_tensor(img_size, dtype=center.dtype)
    if center.shape[-1] != 2 or img_size.shape[-1] != 2:
        raise ValueError("center and img_size must have a last dimension of 2")
    b = scale * 200.0
    info = torch.stack([center[..., 0] - img_size[..., 1] / 2, center[..., 1] - img_size[..., 0] / 2, b], dim=-1)
    return info / focal.unsqueeze(-1)


def crop_to_full_camera(pred_cam: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                        focal: torch.Tensor, img_size: torch.Tensor) -> torch.Tensor:
    """Full-frame translation (B, 3) from the crop camera (s, tx, ty) (CLIFF):

    tz = 2f / (b s), tx_full = tx + 2 (cx − w/2) / (b s), ty_full = ty + 2 (cy − h/2) / (b s).
    """
    if pred_cam.shape[-1] != 3:
        raise ValueError(f"pred_cam must be (..., 3) = (s, tx, ty), got shape {tuple(pred_cam.shape)}")
    center = torch.as_tensor(center, dtype=pred_cam.dtype)
    scale = torch.as_tensor(scale, dtype=pred_cam.dtype)
    focal = torch.as_tensor(focal, dtype=pred_cam.dtype)
    img_size = torch.as_tensor(img_size, dtype=pred_cam.dtype)
    bs = _safe_denominator(scale * 200.0 * pred_cam[..., 0])
    tz = 2.0 * focal / bs
    tx = pred_cam[..., 1] + 2.0 * (center[..., 0] - img_size[..., 1] / 2) / bs
    ty = pred_cam[..., 2] + 2.0 * (center[..., 1] - img_size[..., 0] / 2) / bs
    return torch.stack([tx, ty, tz], dim=-1)


def full_to_crop_camera(transl: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                        focal: torch.Tensor, img_size: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`crop_to_full_camera`: crop camera (B, 3) = (s, tx, ty) from a full-frame translation."""
    if transl.shape[-1] != 3:
        raise ValueError(f"transl must be (..., 3), got shape {tuple(transl.shape)}")
    center = torch.as_tensor(center, dtype=transl.dtype)
    scale = torch.as_tensor(scale, dtype=transl.dtype)
    focal = torch.as_tensor(focal, dtype=transl.dtype)
    img_size = torch.as_tensor(img_size, dtype=transl.dtype)
    b = scale * 200.0
    s = 2.0 * focal / (b * _safe_denominator(transl[..., 2]))
    bs = _safe_denominator(b * s)
    tx = transl[..., 0] - 2.0 * (center[..., 0] - img_size[..., 1] / 2) / bs
    ty = transl[..., 1] - 2.0 * (center[..., 1] - img_size[..., 0] / 2) / bs
    return torch.stack([s, tx, ty], dim=-1)
