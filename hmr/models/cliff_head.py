"""CLIFF regression head (Li et al., ECCV 2022, Fig. 2): HMR's IEF loop fed with the bounding-box information."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from hmr.models.ief import Estimate, ResidualDecoder, estimate_size, flatten_estimate

BBOX_INFO_DIM = 3


class CliffHead(nn.Module):
    """Pooled features (B, C) + bbox_info (B, 3) -> one estimate per IEF iteration.

    Each iteration: ``[feat, bbox_info, pose (J*dim), betas, cam] -> fc hidden -> dropout -> fc hidden ->
    dropout -> residual decoders`` added to the running estimate. As in SPIN/CLIFF there is no activation
    between the fc layers unless ``activation="relu"`` (the original HMR). ``use_bbox_info=False`` gives the
    plain HMR head (bbox_info is then ignored and may be None).
    """

    def __init__(self, feature_dim: int, num_joints: int, rep_dim: int, num_betas: int = 10,
                 iterations: int = 3, hidden: int = 1024, dropout: float = 0.5, activation: str = "none",
                 use_bbox_info: bool = True) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if activation not in ("none", "relu"):
            raise ValueError(f"activation must be 'none' or 'relu', got {activation!r}")
        self.iterations = iterations
        self.use_bbox_info = use_bbox_info
        in_dim = feature_dim + (BBOX_INFO_DIM if use_bbox_info else 0) + estimate_size(num_joints, rep_dim,
                                                                                          num_betas)
        act: nn.Module = nn.ReLU() if activation == "relu" else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), act, nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), act, nn.Dropout(dropout))
        self.decoder = ResidualDecoder(hidden, num_joints, rep_dim, num_betas)

    def forward(self, features: torch.Tensor, bbox_info: Optional[torch.Tensor], init: Estimate) -> List[Estimate]:
        """Run the IEF loop from ``init`` (batched mean estimate); returns the estimate after every iteration."""
        if features.ndim != 2:
            raise ValueError(f"CliffHead expects pooled features (B, C), got {tuple(features.shape)}")
        context = [features]
        if self.use_bbox_info:
            context.append(_check_bbox_info(bbox_info, features.shape[0]))
        estimate, history = init, []
        for _ in range(self.iterations):
            hidden = self.mlp(torch.cat(context + [flatten_estimate(estimate)], dim=1))
            estimate = self.decoder(hidden, estimate)
            history.append(estimate)
        return history


def _check_bbox_info(bbox_info: Optional[torch.Tensor], batch: int) -> torch.Tensor:
    if bbox_info is None or tuple(bbox_info.shape) != (batch, BBOX_INFO_DIM):
        got = None if bbox_info is None else tuple(bbox_info.shape)
        raise ValueError(f"bbox_info must be ({batch}, {BBOX_INFO_DIM}) (CLIFF Eq. 5), got {got}; "
                         "build the head with use_bbox_info=False to regress without it")
    return bbox_info
