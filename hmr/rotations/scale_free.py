"""A scale-free, SVD-free training matrix for PRoM (issue 9, fix 3).

PRoM trains on the raw 3x3 output M. Under an MSE rotation loss the optimum is the conditional mean rotation
matrix, whose singular values are below 1, and forward kinematics on such matrices shortens limbs. Dividing M
by a scalar measure of its size removes that scale while keeping the map smooth and free of any SVD:

- ``frobenius`` (default): M · sqrt(3) / ||M||_F — the root-mean-square singular value becomes 1. Smooth
  everywhere except M = 0; its Jacobian is sqrt(3)/||M|| (I - m mᵀ) with m = vec(M)/||M||, rank 8 (the radial
  direction is lost), all eight nonzero singular values equal sqrt(3)/||M||_F.
- ``columns``: every column divided by its norm (singular at a zero column only).
- ``det``: M / |det M|^(1/3), with |det M| floored at ``eps`` — unbounded as det -> 0, which is the trap the
  issue describes (a reflection cannot cross det = 0 without a huge gradient); kept for comparison.

det <= 0 behaviour: none of the maps changes the sign of det M, so a reflection stays a reflection during
training (its training matrix has det = -1 for ``det``, negative for the others) and inference uses special
Procrustes (SVD, det forced to +1), exactly like PRoM; the first two modes cross det = 0 with bounded
gradients (a singular M with nonzero columns is an ordinary point for them).
"""
from __future__ import annotations

import torch
from torch import Tensor

from hmr.rotations.procrustes import special_procrustes
from hmr.rotations.representations import Representation

MODES = ("frobenius", "columns", "det")


class ScaleFreePRoM(Representation):
    """9 numbers; training uses the raw 3x3 divided by a scalar size (see module doc); inference: SVD."""

    name, dim, inference_map = "prom_scale_free", 9, "svd"

    def __init__(self, mode: str = "frobenius", eps: float = 1e-6) -> None:
        if mode not in MODES:
            raise ValueError(f"prom_scale_free: unknown mode {mode!r}; expected one of {MODES}")
        if eps <= 0:
            raise ValueError(f"prom_scale_free: eps must be positive, got {eps}")
        self.mode, self.eps = mode, float(eps)
        self.train_map = f"scale_free:{mode}"

    def _train(self, x: Tensor) -> Tensor:
        M = x.reshape(*x.shape[:-1], 3, 3)
        if self.mode == "frobenius":
            norm = torch.linalg.matrix_norm(M).clamp(min=self.eps)
            return M * (3.0 ** 0.5 / norm)[..., None, None]
        if self.mode == "columns":
            return M / torch.linalg.vector_norm(M, dim=-2, keepdim=True).clamp(min=self.eps)
        det = torch.linalg.det(M).abs().clamp(min=self.eps)
        return M / det.pow(1.0 / 3.0)[..., None, None]

    def _infer(self, x: Tensor) -> Tensor:
        return special_procrustes(x.reshape(*x.shape[:-1], 3, 3))

    def encode(self, R: Tensor) -> Tensor:
        return R.reshape(*R.shape[:-2], 9)
