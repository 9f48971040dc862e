"""Cheap online diagnostics of raw predicted matrices (logged during training and evaluation).

For M = U diag(s1, s2, s3) Vᵀ the special-Procrustes Jacobian has condition number (s1 + s2) / (s2 + s3'),
with s3' = sign(det M)·s3 the *signed* smallest singular value ("Training Without Orthogonalization,
Inference With SVD"); it is unbounded as s2 → -s3' (a reflection with two equal small singular values).
"""
from __future__ import annotations

from typing import Dict

import torch


def projection_condition_stats(matrices: torch.Tensor) -> Dict[str, float]:
    """Summary of (..., 3, 3) matrices: singular values, det<0 fraction, Procrustes condition number."""
    m = matrices.detach().reshape(-1, 3, 3).double()
    s = torch.linalg.svdvals(m)
    det_sign = torch.sign(torch.linalg.det(m))
    s3_signed = s[:, 2] * det_sign
    cond = (s[:, 0] + s[:, 1]) / (s[:, 1] + s3_signed).clamp(min=1e-12)
    return {
        "sv_max_mean": float(s[:, 0].mean()),
        "sv_min_mean": float(s[:, 2].mean()),
        "det_neg_frac": float((det_sign < 0).double().mean()),
        "proj_cond_median": float(cond.median()),
        "proj_cond_p99": float(torch.quantile(cond, 0.99)) if cond.numel() > 1 else float(cond.max()),
    }
