"""2D keypoint heatmaps on the backbone's feature maps, their soft-argmax coordinates, and the heatmap loss.

A from-scratch CPU backbone learns *where* joints are far faster from dense per-cell targets than from the
regression losses alone (docs/cpu_training.md): given perfect 2D keypoints, a small MLP lifts the synthetic
bodies to 47 mm PA-MPJPE, while a regressor trained only through its 3D/2D losses stays near the mean pose.
The head predicts one heatmap per keypoint from a fine map (stride ``stride``) merged with the upsampled coarse
map (stride 16); the soft-argmax ("integral regression", Sun et al., ECCV 2018) turns each heatmap into
coordinates that the regression head receives next to the image features, so the 3D losses also reach it.

Coordinates are crop-normalised like :func:`hmr.data.crop.to_crop_coordinates`: the crop centre is 0 and
the bbox side (the crop height) spans [-1, 1] on both axes.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class HeatmapHead(nn.Module):
    """``forward(fine (B, Cf, h, w), coarse (B, Cc, h', w'))`` -> heatmap logits (B, K, h, w).

    ``fine_stage`` / ``stride``: the backbone stage the fine map comes from and its stride in crop pixels;
    ``crop_hw``: the crop size (H, W), which fixes the cell centres ``grid_x`` (w,) and ``grid_y`` (h,).
    """

    def __init__(self, fine_stage: int, fine_channels: int, coarse_channels: int, num_keypoints: int,
                 grid_hw: Tuple[int, int], stride: int, crop_hw: Tuple[int, int], hidden: int = 64) -> None:
        super().__init__()
        self.fine_stage = fine_stage
        self.num_keypoints = num_keypoints
        self.mix = nn.Sequential(nn.Conv2d(fine_channels + coarse_channels, hidden, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(hidden), nn.ReLU(inplace=True), nn.Conv2d(hidden, num_keypoints, 1))
        half_height = crop_hw[0] / 2.0
        cells_y = (torch.arange(grid_hw[0]) + 0.5) * stride
        cells_x = (torch.arange(grid_hw[1]) + 0.5) * stride
        self.register_buffer("grid_y", (cells_y - crop_hw[0] / 2.0) / half_height, persistent=False)
        self.register_buffer("grid_x", (cells_x - crop_hw[1] / 2.0) / half_height, persistent=False)
        self.cell = stride / half_height  # one cell in crop-normalised units

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.mix(torch.cat([fine, up], dim=1))

    def coordinates(self, logits: torch.Tensor) -> torch.Tensor:
        """Soft-argmax: the expected cell centre under softmax(logits) per keypoint, (B, K, 2) as (x, y)."""
        return soft_argmax(logits, self.grid_x, self.grid_y)


def soft_argmax(logits: torch.Tensor, grid_x: torch.Tensor, grid_y: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, K, 2) expected (x, y) of the cell centres ``grid_x`` (w,), ``grid_y`` (h,)."""
    prob = logits.flatten(2).softmax(dim=-1).view_as(logits)
    x = (prob.sum(dim=2) * grid_x).sum(dim=-1)
    y = (prob.sum(dim=3) * grid_y).sum(dim=-1)
    return torch.stack([x, y], dim=-1)
