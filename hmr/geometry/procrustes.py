"""Batched similarity (Procrustes) alignment as in SPIN / 4D-Humans, for metrics and losses.

For source X and target Y (N points each), find s, R ∈ SO(3), t minimising ‖s R X + t − Y‖²
(Umeyama 1991): centre both, K = X̄ Ȳᵀ, K = U Σ Vᵀ, Z = diag(1, 1, sign det(U Vᵀ)), R = V Z Uᵀ,
s = tr(R K) / ‖X̄‖², t = μ_Y − s R μ_X. The reflection fix (Z) keeps R a proper rotation.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

_TINY = 1e-12


def _check_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.shape != target.shape or source.dim() != 3 or source.shape[-1] != 3:
        raise ValueError("source and target must both be (B, N, 3) with equal shapes, got "
                         f"{tuple(source.shape)} and {tuple(target.shape)}")


def similarity_transform(source: torch.Tensor, target: torch.Tensor
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s (B,), R (B, 3, 3), t (B, 3)) with s R source + t ≈ target; inputs (B, N, 3). Differentiable."""
    _check_pair(source, target)
    mu_x = source.mean(dim=1, keepdim=True)
    mu_y = target.mean(dim=1, keepdim=True)
    x = (source - mu_x).transpose(1, 2)  # (B, 3, N)
    y = (target - mu_y).transpose(1, 2)
    var_x = (x * x).sum(dim=(1, 2))
    K = x @ y.transpose(1, 2)
    U, _, Vh = torch.linalg.svd(K)
    V = Vh.transpose(1, 2)
    Z = torch.eye(3, dtype=source.dtype, device=source.device).repeat(source.shape[0], 1, 1)
    Z[:, 2, 2] = torch.sign(torch.linalg.det(U @ Vh))
    Z[:, 2, 2] = torch.where(Z[:, 2, 2] == 0, torch.ones_like(Z[:, 2, 2]), Z[:, 2, 2])
    R = V @ Z @ U.transpose(1, 2)
    s = torch.diagonal(R @ K, dim1=1, dim2=2).sum(-1) / var_x.clamp_min(_TINY)
    t = mu_y.squeeze(1) - s.unsqueeze(-1) * (R @ mu_x.transpose(1, 2)).squeeze(-1)
    return s, R, t


def align_similarity(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` (B, N, 3) moved by the best similarity transform onto ``target``."""
    s, R, t = similarity_transform(source, target)
    return s[:, None, None] * source @ R.transpose(1, 2) + t[:, None, :]


def similarity_transform_np(source: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy version of :func:`similarity_transform` (float64)."""
    s, R, t = similarity_transform(torch.from_numpy(np.asarray(source, dtype=np.float64)),
                                   torch.from_numpy(np.asarray(target, dtype=np.float64)))
    return s.numpy(), R.numpy(), t.numpy()


def align_similarity_np(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """NumPy version of :func:`align_similarity` (float64)."""
    return align_similarity(torch.from_numpy(np.asarray(source, dtype=np.float64)),
                            torch.from_numpy(np.asarray(target, dtype=np.float64))).numpy()
