"""Training losses: rotation, 3D joints, vertices, full-frame 2D reprojection, shape prior, 2D heatmaps.

Every term takes per-sample masks/confidences so missing labels contribute nothing, and returns a scalar
that is a mean over the *labelled* elements (zero, with a graph, when nothing is labelled).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor


_WEIGHT_EPS = 1e-12  # guards the division only: a total confidence of 0.3 still divides by 0.3


def _masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """sum(values * weights) / sum(weights) for any positive total weight (low confidences are not scaled
    down); 0 (still differentiable, no NaN) when all weights are zero."""
    weights = weights.to(values.dtype)
    total = weights.sum()
    return (values * weights).sum() / total.clamp(min=_WEIGHT_EPS) if total > 0 else values.sum() * 0.0


def rotation_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared Frobenius error between (B, J, 3, 3) matrices, over samples with ``mask`` (B,) set.

    ``pred`` is whatever the representation's rotation-loss mapping produced (raw matrices for PRoM).
    """
    per_joint = (pred - target).pow(2).sum(dim=(-1, -2))  # (B, J)
    return _masked_mean(per_joint, mask[:, None].expand_as(per_joint))


def orthogonality_penalty(matrices: Tensor) -> Tensor:
    """Mean over matrices of ||MᵀM − I||_F² for (..., 3, 3) training-time matrices (issue 9, fix 1).

    Zero exactly on O(3) (rotations *and* reflections: it does not push det < 0 towards det > 0); no SVD in the
    gradient path. Its gradient 4 M (MᵀM − I) vanishes at M = 0, so it never blows up at det = 0.
    """
    if matrices.shape[-2:] != (3, 3):
        raise ValueError(f"orthogonality_penalty: expected (..., 3, 3) matrices, got {tuple(matrices.shape)}")
    eye = torch.eye(3, dtype=matrices.dtype, device=matrices.device)
    gram = matrices.transpose(-1, -2) @ matrices
    return (gram - eye).pow(2).sum(dim=(-1, -2)).mean()


def root_align(points: Tensor, root: Sequence[int]) -> Tensor:
    """Subtract the mean of the ``root`` joints (e.g. the two hips for SPIN-24, the wrist for hands)."""
    return points - points[:, list(root)].mean(dim=1, keepdim=True)


def joints3d_loss(pred: Tensor, target: Tensor, root: Sequence[int]) -> Tensor:
    """L1 (per coordinate) between root-aligned 3D joints; ``target`` is (B, K, 4) with confidence last.

    Samples whose root joints are unlabelled are ignored.
    """
    conf = target[..., 3]
    root_ok = (conf[:, list(root)] > 0).all(dim=1, keepdim=True).to(conf.dtype)
    weights = conf * root_ok
    diff = (root_align(pred, root) - root_align(target[..., :3], root)).abs().sum(dim=-1)  # (B, K)
    return _masked_mean(diff, weights)


def vertex_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """L1 between (B, V, 3) vertices for samples with ``mask`` (B,) set."""
    diff = (pred - target).abs().sum(dim=-1)
    return _masked_mean(diff, mask[:, None].expand_as(diff))


def keypoint2d_loss(pred_px: Tensor, target: Tensor, center: Tensor, bbox_size: Tensor) -> Tensor:
    """Confidence-weighted squared error of full-frame 2D keypoints, in bbox-normalised units.

    Both sets are mapped to ``(x - center) / (bbox_size / 2)`` so the loss does not depend on image size
    (CLIFF supervises the full-frame projection; the normalisation only fixes the scale).
    ``pred_px`` (B, K, 2) pixels, ``target`` (B, K, 3) pixels + confidence, ``center`` (B, 2), ``bbox_size`` (B,).
    """
    half = (bbox_size / 2.0)[:, None, None]
    pred_n = (pred_px - center[:, None]) / half
    gt_n = (target[..., :2] - center[:, None]) / half
    diff = (pred_n - gt_n).pow(2).sum(dim=-1)
    return _masked_mean(diff, target[..., 2])


def betas_prior(betas: Tensor) -> Tensor:
    """Mean squared shape coefficients (the shape space is unit-variance)."""
    return betas.pow(2).mean()


@dataclass
class LossWeights:
    """Loss weights (config section ``loss``); zero disables a term."""

    rotation: float = 1.0
    joints3d: float = 5.0
    vertices: float = 0.0
    keypoints2d: float = 5.0
    betas: float = 0.001
    betas_gt: float = 0.01
    representation: float = 0.1
    orthogonality: float = 0.0
    heatmap: float = 0.0
    landmarks: float = 0.0

    @classmethod
    def from_config(cls, cfg: Optional[Mapping[str, float]]) -> "LossWeights":
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: float(v) for k, v in cfg.items()})


def total_loss(terms: Mapping[str, Tensor], weights: LossWeights) -> Tensor:
    """Weighted sum of the named loss terms (names are LossWeights fields)."""
    out = None
    for name, value in terms.items():
        weighted = getattr(weights, name) * value
        out = weighted if out is None else out + weighted
    if out is None:
        raise ValueError("no loss terms")
    return out


def betas_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Squared error of shape coefficients for samples with ground-truth shape."""
    diff = (pred - target).pow(2).mean(dim=-1)
    return _masked_mean(diff, mask)


def heatmap_loss(logits: Tensor, target_xy: Tensor, visible: Tensor, grid_x: Tensor, grid_y: Tensor,
                 sigma: float) -> Tensor:
    """Cross-entropy between softmax(logits) over the cells and a normalised Gaussian at each target keypoint.

    ``logits`` (B, K, h, w); ``target_xy`` (B, K, 2) in the crop-normalised frame of the cell centres
    ``grid_x`` (w,) / ``grid_y`` (h,) (see :mod:`hmr.models.keypoint_head`); ``sigma`` in the same units;
    mean over the ``visible`` (B, K) keypoints (0, with a graph, when none are).
    """
    d2 = ((grid_x[None, None, None, :] - target_xy[..., 0, None, None]).square()
          + (grid_y[None, None, :, None] - target_xy[..., 1, None, None]).square())  # (B, K, h, w)
    target = torch.softmax(-d2.flatten(2) / (2.0 * sigma ** 2), dim=-1)
    per_keypoint = -(target * logits.flatten(2).log_softmax(dim=-1)).sum(dim=-1)
    return _masked_mean(per_keypoint, visible)


def landmark_loss(pred: Tensor, target: Tensor, confidence: Tensor) -> Tensor:
    """Confidence-weighted L1 (x + y) between ``pred`` and ``target`` 2D points (B, K, 2) in the same units."""
    return _masked_mean((pred - target).abs().sum(dim=-1), confidence)


def summarize(terms: Mapping[str, Tensor]) -> Dict[str, float]:
    """Detached float values of loss terms (for logging)."""
    return {k: float(v.detach()) for k, v in terms.items()}
