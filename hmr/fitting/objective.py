"""The fitting objective: robust confidence-weighted 2D reprojection plus priors (SMPLify, Bogo et al. 2016,
Eq. 2; EFT, Joo et al. 2021, uses the same data term with the network as the prior).

Per person, with keypoint residuals r_k = ‖π(K, X_k) − x_k‖ / b in units of the person's box side b,

    E = w_2d · (1/K) Σ_k c_k ρ(r_k)                                   (SMPLify Eq. 3, E_J)
      + w_orient · ½‖R_0 − A_0‖²_F + w_pose · Σ_{j≥1} ½‖R_j − A_j‖²_F  (stay near the anchor = regressor)
      + w_anchor_shape · ‖β − β_A‖² + w_shape · ‖β‖²                   (SMPLify Eq. 6, E_β)
      + w_pose_prior · E_GMM(θ_1..J−1)                                 (SMPLify Eq. 5, E_θ; θ = log R)
      + w_depth · (log t_z − log t_z,A)²                               (camera depth prior)
      + w_smooth · [Σ_j ½‖R_j − P_j‖²_F + ‖β − β_P‖² + ‖t − t_P‖² / t_{z,P}²]   (video: previous fit P)
      + w_outside · (1/K) Σ_k ‖max(0, l_k − π_k) + max(0, π_k − u_k)‖² / b²   (truncation: see below)

ρ is Geman-McClure scaled to [0, 1): ρ(r) = r² / (r² + σ²), i.e. SMPLify's σ²r²/(σ² + r²) divided by σ².
½‖R − A‖²_F = 2(1 − cos ∠(R, A)) ≈ ∠², so with the rotation chart R = A·exp(δ) used when the anchor is the
start point the anchor term is ≈ ‖δ‖² (exactly 2(1 − cos‖δ‖)) — smooth everywhere, no log map.

Truncation: a keypoint the detector places outside the image (it had no pixels to see, so it carries no weight
in the data term) still tells which side of the frame the joint is on. Its bounds l_k, u_k (:func:`frame_bounds`)
confine the model's projected keypoint π_k to that side — a one-sided quadratic, zero once the joint is out of
the picture — so limbs cut off by the frame leave it instead of folding back into the image, where the
regressor's guess for an unseen limb often puts them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from hmr.geometry.camera import perspective_projection
from hmr.rotations import axis_angle_to_matrix


@dataclass(frozen=True)
class FitConfig:
    """Iterations, step sizes (Adam; per parameter group, in that group's units) and energy weights."""

    iterations: int = 40            # all parameters
    camera_iterations: int = 10     # first stage: camera translation + global orientation only (SMPLify Sec. 3.3)
    lr_rotation: float = 0.05       # radians per step (residual axis-angle δ)
    lr_betas: float = 0.05          # shape units per step
    lr_camera: float = 0.01         # image-plane direction t_xy/t_z and log-depth per step
    sigma: float = 0.1              # Geman-McClure scale, fraction of the box side
    min_confidence: float = 0.1     # keypoints below this confidence are ignored
    min_keypoints: int = 4          # fewer usable keypoints: the person is not fitted (falls back)
    swap_ratio: float = 0.7         # swap left/right labels when that cuts the start's 2D energy below this share
    max_error_after: float = 0.2    # a fit whose keypoints stay farther than this (mean, fraction of the box side)
                                    # missed them and falls back (fits that succeed end at ~0.02-0.05; 0: never)
    w_reprojection: float = 1.0
    w_anchor_orient: float = 0.02
    w_anchor_pose: float = 0.02
    w_anchor_shape: float = 0.01
    w_pose_prior: float = 0.002
    w_shape: float = 0.01
    w_depth: float = 0.1
    w_smooth: float = 0.05
    w_outside: float = 0.0          # > 0 (10 tried): keypoints detected beyond the image stay beyond it (with a
                                    # frame; off by default: docs/demo.md, "Limbs cut off by the frame")
    prior_components: int = 4       # GMM components of the synthetic pose prior (0: no pose prior)

    @classmethod
    def preset(cls, kind: str, **overrides) -> "FitConfig":
        """The measured defaults for ``kind`` ("body" or "hand"; hands move the camera in larger steps: a
        hand's depth and position errors are large relative to its size), with ``overrides`` applied."""
        if kind not in PRESETS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[kind], **overrides})

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.camera_iterations < 0:
            raise ValueError("iterations must be >= 0")
        if self.max_error_after < 0:
            raise ValueError(f"max_error_after must be >= 0 (0: never), got {self.max_error_after}")
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0 (fraction of the box side), got {self.sigma}")
        for name, value in vars(self).items():
            if name.startswith(("w_", "lr_")) and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


PRESETS = {"body": {}, "hand": {"lr_camera": 0.02}}


def geman_mcclure(squared: Tensor, sigma: float) -> Tensor:
    """ρ = r² / (r² + σ²) of squared residuals r² (SMPLify's Geman-McClure divided by σ²; in [0, 1))."""
    return squared / (squared + sigma * sigma)


def so3_exp(delta: Tensor) -> Tensor:
    """(..., 3) axis-angle → (..., 3, 3) rotation (Rodrigues; finite gradient at 0)."""
    return axis_angle_to_matrix(delta)


def chordal(R: Tensor, A: Tensor) -> Tensor:
    """Σ_j ½‖R_j − A_j‖²_F over joints: (B, J, 3, 3) pairs → (B,) (= Σ 2(1 − cos angle))."""
    return 0.5 * ((R - A) ** 2).sum(dim=(-3, -2, -1))


def project(points_cam: Tensor, K: Tensor) -> Tensor:
    """(B, N, 3) camera-frame points, K (B, 3, 3) → (B, N, 2) pixels."""
    return perspective_projection(points_cam, K)


def reprojection(pixels: Tensor, keypoints: Tensor, weights: Tensor, box: Tensor, sigma: float) -> Tensor:
    """(1/K) Σ_k c_k ρ(‖pixels_k − keypoints_k‖ / b): (B, K, 2), (B, K, 2), (B, K), (B,) → (B,)."""
    squared = ((pixels - keypoints) ** 2).sum(-1) / (box[:, None] ** 2)
    return (weights * geman_mcclure(squared, sigma)).sum(-1) / keypoints.shape[1]


def keypoint_error(pixels: Tensor, keypoints: Tensor, used: Tensor) -> Tensor:
    """Mean pixel distance over the used keypoints (B,); NaN where a person has none."""
    dist = torch.linalg.vector_norm(pixels - keypoints, dim=-1)
    count = used.sum(-1)
    total = torch.where(used, dist, torch.zeros_like(dist)).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


@dataclass
class Terms:
    """Per-person energies (B,) of one evaluation; ``total`` is their weighted sum."""

    reprojection: Tensor
    anchor: Tensor
    pose_prior: Tensor
    shape: Tensor
    depth: Tensor
    smooth: Tensor
    outside: Tensor
    total: Tensor


def energy(cfg: FitConfig, pixels: Tensor, keypoints: Tensor, weights: Tensor, box: Tensor, R: Tensor,
           betas: Tensor, transl: Tensor, anchor_R: Tensor, anchor_betas: Tensor, anchor_log_depth: Tensor,
           pose_prior: Optional[Tensor] = None, previous=None,
           bounds: Optional[Tuple[Tensor, Tensor]] = None) -> Terms:
    """All terms of the module docstring. ``pose_prior``: E_GMM per person (B,) (None: no pose prior);
    ``previous``: (rotations, betas, transl) of the previous frame's fit; ``bounds``: :func:`frame_bounds`."""
    rep = reprojection(pixels, keypoints, weights, box, cfg.sigma)
    anchor = (cfg.w_anchor_orient * chordal(R[:, :1], anchor_R[:, :1])
              + cfg.w_anchor_pose * chordal(R[:, 1:], anchor_R[:, 1:])
              + cfg.w_anchor_shape * ((betas - anchor_betas) ** 2).sum(-1))
    zero = rep.new_zeros(rep.shape)
    prior = zero if pose_prior is None else pose_prior
    shape = (betas ** 2).sum(-1)
    depth = (torch.log(transl[:, 2]) - anchor_log_depth) ** 2
    smooth = zero
    if previous is not None:
        prev_R, prev_betas, prev_t = previous
        smooth = (chordal(R, prev_R) + ((betas - prev_betas) ** 2).sum(-1)
                  + ((transl - prev_t) ** 2).sum(-1) / prev_t[:, 2].abs().clamp_min(1e-3) ** 2)
    outside = zero if bounds is None else outside_frame(pixels, bounds[0], bounds[1], box)
    total = (cfg.w_reprojection * rep + anchor + cfg.w_pose_prior * prior + cfg.w_shape * shape
             + cfg.w_depth * depth + cfg.w_smooth * smooth + cfg.w_outside * outside)
    return Terms(rep, anchor, prior, shape, depth, smooth, outside, total)


def frame_bounds(keypoints: Tensor, weights: Tensor, frame: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-keypoint bounds ``(lower, upper)`` (B, K, 2) pixels for the truncation term: a finite keypoint with
    weight 0 that lies outside ``frame`` (B, 4) or (4,) = (x0, y0, x1, y1) must project beyond the edge it lies
    beyond (x < x0: x ≤ x0; x > x1: x ≥ x1; likewise y); every other bound is ±inf (undetected keypoints: NaN)."""
    frame = frame.to(keypoints).expand(keypoints.shape[0], 4)
    low_edge, high_edge = frame[:, None, :2], frame[:, None, 2:]
    eligible = ((weights <= 0) & torch.isfinite(keypoints).all(-1))[..., None]
    inf = torch.full_like(keypoints, float("inf"))
    lower = torch.where(eligible & (keypoints > high_edge), high_edge.expand_as(keypoints), -inf)
    upper = torch.where(eligible & (keypoints < low_edge), low_edge.expand_as(keypoints), inf)
    return lower, upper


def outside_frame(pixels: Tensor, lower: Tensor, upper: Tensor, box: Tensor) -> Tensor:
    """(1/K) Σ_k ‖max(0, lower_k − π_k) + max(0, π_k − upper_k)‖² / b² (B,): how far (in box sides) the
    projected keypoints ``pixels`` lie inside the frame on the side their detections left it."""
    inside = (lower - pixels).clamp_min(0.0) + (pixels - upper).clamp_min(0.0)
    return (inside ** 2).sum((-2, -1)) / (box ** 2) / pixels.shape[1]


def keypoint_weights(confidence: Tensor, keypoints: Tensor, mask: Optional[Tensor], min_confidence: float) -> Tensor:
    """Confidences (B, K) with missing (``mask`` False), non-finite and below-threshold keypoints set to 0."""
    finite = torch.isfinite(keypoints).all(-1) & torch.isfinite(confidence)
    used = finite & (confidence >= min_confidence)
    if mask is not None:
        used = used & mask.to(torch.bool)
    return torch.where(used, confidence.clamp(0.0, 1.0), torch.zeros_like(confidence))
