"""Online diagnostics of raw predicted matrices for the training log (a thin wrapper over
:func:`hmr.rotations.matrix_stats`: signed singular values, det < 0 fraction, special-Procrustes condition
number (s1 + s2) / (s2 + s3') with the *signed* smallest singular value s3')."""
from __future__ import annotations

from typing import Dict

import torch

from hmr.rotations import matrix_stats, summarize_stats


def projection_condition_stats(matrices: torch.Tensor) -> Dict[str, float]:
    """Scalars to log for (..., 3, 3) matrices (see :func:`hmr.rotations.summarize_stats` for the keys)."""
    return summarize_stats(matrix_stats(matrices.detach().float()))
