"""Loss terms that supervise 2D keypoints inside the backbone (not the body model's projection): the heatmap
head's maps (``loss.heatmap``) and a landmark network's own image landmarks (``loss.landmarks``)."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from hmr import losses
from hmr.data.crop import to_crop_coordinates
from hmr.keypoints.mapping import landmark_weights


def heatmap_term(head, logits: torch.Tensor, batch: Dict[str, Any], crop_hw: Tuple[int, int]) -> torch.Tensor:
    """Heatmap loss of ``head`` (:class:`hmr.models.keypoint_head.HeatmapHead`) against the labelled 2D keypoints
    that fall inside the crop (sigma: one cell)."""
    crop_h, crop_w = crop_hw
    target = to_crop_coordinates(batch["keypoints_2d"], batch["center"], batch["scale"], (crop_h, crop_w))
    inside = (target[..., 1].abs() <= 1.0) & (target[..., 0].abs() <= crop_w / crop_h)
    visible = (batch["keypoints_2d"][..., 2] > 0) & inside
    return losses.heatmap_loss(logits, target, visible, head.grid_x, head.grid_y, sigma=head.cell)


class LandmarkTerm:
    """``loss.landmarks``: L1 between a landmark network's image landmarks, mapped to the labelled joint set
    (:func:`hmr.keypoints.mapping.landmark_weights`), and the labelled 2D keypoints, both in crop coordinates
    normalised to [-1, 1] over the (square) crop; joints without a landmark counterpart get no weight. It trains
    the network's top (``model.landmarks.train_from``) to find keypoints on the training images — domain
    adaptation of the pretrained detector — while the mesh losses train the head on its features."""

    def __init__(self, model: torch.nn.Module, joint_set: str) -> None:
        backbone = getattr(model, "backbone", None)
        if not getattr(backbone, "trainable_top", False):
            raise ValueError("loss.landmarks > 0 needs a landmark network with a trainable top: set "
                             "model.pooling=landmarks, model.freeze_backbone=true and model.landmarks.train_from")
        self.joint_set = joint_set

    def __call__(self, landmarks: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        """``landmarks`` (B, L, 2) in [-0.5, 0.5] of the crop side (the regressor's ``landmarks_2d``)."""
        pred, target, confidence = _mapped(landmarks, batch, self.joint_set)
        return losses.landmark_loss(pred, target, confidence)


def landmark_errors(landmarks: torch.Tensor, batch: Dict[str, Any], joint_set: str) -> torch.Tensor:
    """Per sample, the median distance between the mapped landmarks and the labelled 2D keypoints that have a
    counterpart, as a fraction of the box side (``(B,)``; NaN where no such keypoint is labelled)."""
    pred, target, confidence = _mapped(landmarks, batch, joint_set)
    distance = (pred - target).norm(dim=-1) / 2.0  # [-1, 1] units -> fraction of the box side
    distance = torch.where(confidence > 0, distance, torch.full_like(distance, float("nan")))
    return distance.nanmedian(dim=1).values


def _mapped(landmarks: torch.Tensor, batch: Dict[str, Any], joint_set: str):
    """(landmarks mapped to ``joint_set``, labels, confidence — zero where a joint has no counterpart), the
    points in crop coordinates normalised to [-1, 1] over the box."""
    weights = torch.as_tensor(landmark_weights(joint_set, landmarks.shape[1]), dtype=landmarks.dtype,
                              device=landmarks.device)
    pred = 2.0 * torch.einsum("kl,blc->bkc", weights, landmarks)
    target = to_crop_coordinates(batch["keypoints_2d"], batch["center"], batch["scale"], (1, 1))
    confidence = batch["keypoints_2d"][..., 2] * (weights.sum(dim=1) > 0)
    return pred, target, confidence
