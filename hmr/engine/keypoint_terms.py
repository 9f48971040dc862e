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
        weights = landmark_weights(joint_set, backbone.model.num_landmarks)
        self.weights = torch.as_tensor(weights, dtype=torch.float32)
        self.has_counterpart = self.weights.sum(dim=1) > 0

    def __call__(self, landmarks: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        """``landmarks`` (B, L, 2) in [-0.5, 0.5] of the crop side (the regressor's ``landmarks_2d``)."""
        weights = self.weights.to(landmarks.device)
        pred = 2.0 * torch.einsum("kl,blc->bkc", weights, landmarks)
        target = to_crop_coordinates(batch["keypoints_2d"], batch["center"], batch["scale"], (1, 1))
        confidence = batch["keypoints_2d"][..., 2] * self.has_counterpart.to(landmarks.device)
        return losses.landmark_loss(pred, target, confidence)
