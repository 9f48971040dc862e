"""Iterative error feedback (HMR, Kanazawa et al. 2018, Sec. 3.2): residual decoders and the running estimate.

An *estimate* is a dict ``{"pose_params": (B, J, dim), "betas": (B, num_betas), "cam": (B, 3)}``; every IEF
step adds a small decoded residual to it, starting from the mean initialisation.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

Estimate = Dict[str, torch.Tensor]

#: Xavier gain of the residual decoders (HMR/SPIN): the first predictions start at the mean initialisation.
DECODER_GAIN = 0.01


def estimate_size(num_joints: int, rep_dim: int, num_betas: int) -> int:
    """Length of a flattened estimate: J*dim pose numbers + betas + 3 camera numbers."""
    return num_joints * rep_dim + num_betas + 3


def flatten_estimate(estimate: Estimate) -> torch.Tensor:
    """``(B, J*dim + num_betas + 3)``: the estimate as one vector per sample (the head's feedback input)."""
    pose = estimate["pose_params"]
    return torch.cat([pose.reshape(pose.shape[0], -1), estimate["betas"], estimate["cam"]], dim=1)


class ResidualDecoder(nn.Module):
    """``decpose`` / ``decshape`` / ``deccam``: linear maps from a hidden vector to a residual estimate update.

    Weights are Xavier-uniform with gain :data:`DECODER_GAIN` and biases are zero (SPIN keeps PyTorch's
    default biases; zero biases make the untrained head return exactly the mean plus a tiny feature term).
    """

    def __init__(self, in_dim: int, num_joints: int, rep_dim: int, num_betas: int) -> None:
        super().__init__()
        self.num_joints, self.rep_dim = num_joints, rep_dim
        self.decpose = nn.Linear(in_dim, num_joints * rep_dim)
        self.decshape = nn.Linear(in_dim, num_betas)
        self.deccam = nn.Linear(in_dim, 3)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=DECODER_GAIN)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: torch.Tensor, estimate: Estimate) -> Estimate:
        """Return ``estimate + decode(hidden)`` (a new dict; the input is not modified)."""
        pose_delta = self.decpose(hidden).reshape(-1, self.num_joints, self.rep_dim)
        return {
            "pose_params": estimate["pose_params"] + pose_delta,
            "betas": estimate["betas"] + self.decshape(hidden),
            "cam": estimate["cam"] + self.deccam(hidden),
        }
