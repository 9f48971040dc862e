"""Gram-Schmidt orthogonalizers for 3D rotations (6D = the first two *columns*, Zhou et al. 2019).

Layout of a 6D vector: ``x6[..., 6]`` is ``R[..., :, :2].reshape(..., 6)`` (row-major over the 3x2 block, as roma
and SPIN/CLIFF's ``rot6d_to_rotmat``), i.e. ``x6.view(..., 3, 2)`` has the two columns a1, a2.

Degenerate-input policy (never a NaN): if |a1| < eps, b1 = e_x; if the part of a2 orthogonal to b1 has norm
< eps (parallel or zero columns), b2 = the unit vector orthogonal to b1 built from the coordinate axis least
aligned with b1. The result is always a proper rotation; the gradient there flows only through what was used.
"""
from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_EPS = 1e-8


def as_columns6(x6: Tensor) -> Tensor:
    """Accept (..., 6) or (..., 3, 2) and return the (..., 3, 2) column view."""
    if not isinstance(x6, Tensor) or not x6.is_floating_point():
        raise TypeError("expected a floating-point torch.Tensor of shape (..., 6) or (..., 3, 2)")
    if x6.shape[-1] == 6:
        return x6.reshape(*x6.shape[:-1], 3, 2)
    if x6.ndim >= 2 and x6.shape[-2:] == (3, 2):
        return x6
    raise ValueError(f"expected a tensor of shape (..., 6) or (..., 3, 2), got {tuple(x6.shape)}")


def _safe_normalize(v: Tensor, fallback: Tensor, eps: float) -> Tensor:
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    # Divide by the clamped norm so the unused branch of torch.where never holds inf (no NaN gradients).
    return torch.where(norm > eps, v / norm.clamp_min(eps), fallback)


def _any_orthogonal_unit(b1: Tensor) -> Tensor:
    """A unit vector orthogonal to unit b1: b1 x e_k with e_k the axis least aligned with b1."""
    k = b1.abs().argmin(dim=-1, keepdim=True)
    axis = torch.zeros_like(b1).scatter_(-1, k, 1.0)
    v = torch.linalg.cross(b1, axis)
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def orthonormal_pair(a1: Tensor, a2: Tensor, eps: float = DEFAULT_EPS) -> tuple[Tensor, Tensor]:
    """Gram-Schmidt on two 3-vectors with the documented degenerate-input policy."""
    e_x = torch.zeros_like(a1)
    e_x[..., 0] = 1.0
    b1 = _safe_normalize(a1, e_x, eps)
    a2_perp = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = _safe_normalize(a2_perp, _any_orthogonal_unit(b1.detach()), eps)
    return b1, b2


def gram_schmidt(x6: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """Zhou 2019 6D -> rotation: b1 = a1/|a1|, b2 = normalized a2 - (b1.a2) b1, b3 = b1 x b2. Returns (..., 3, 3)."""
    cols = as_columns6(x6)
    b1, b2 = orthonormal_pair(cols[..., 0], cols[..., 1], eps)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-1)


def symmetric_gram_schmidt(M: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """Order-free ("unbiased") Gram-Schmidt of a 3x3 matrix's first two columns; returns (..., 3, 3).

    Plain Gram-Schmidt keeps column 1's direction exactly and pushes all the correction into column 2.
    Here both columns are normalised and then rotated symmetrically away from their bisector until they are
    orthogonal: with c1, c2 the unit columns, u = c1 + c2, w = c1 - c2, b1 = (u/|u| + w/|w|)/sqrt(2),
    b2 = (u/|u| - w/|w|)/sqrt(2), b3 = b1 x b2. This is the exact Procrustes (Loewdin 1950 symmetric
    orthogonalisation) of the pair (c1, c2): each column moves by the same angle. The third column of M is
    not used, as in 6D. Degenerate pairs (c1 = +-c2) fall back to plain Gram-Schmidt's policy.
    """
    if M.ndim < 2 or M.shape[-2:] != (3, 3):
        raise ValueError(f"expected a tensor of shape (..., 3, 3), got {tuple(M.shape)}")
    e_x = torch.zeros_like(M[..., 0])
    e_x[..., 0] = 1.0
    c1 = _safe_normalize(M[..., 0], e_x, eps)
    c2 = _safe_normalize(M[..., 1], _any_orthogonal_unit(c1.detach()), eps)
    u, w = c1 + c2, c1 - c2
    u_norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    w_norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    ok = (u_norm > eps) & (w_norm > eps)
    uh, wh = u / u_norm.clamp_min(eps), w / w_norm.clamp_min(eps)
    b1 = torch.where(ok, (uh + wh) / 2**0.5, 0.0)
    b2 = torch.where(ok, (uh - wh) / 2**0.5, 0.0)
    g1, g2 = orthonormal_pair(c1, c2, eps)
    b1, b2 = torch.where(ok, b1, g1), torch.where(ok, b2, g2)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-1)


def matrix_to_6d(R: Tensor) -> Tensor:
    """First two columns of (..., 3, 3) as a (..., 6) vector in this module's layout."""
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def complete_6d_free(x6: Tensor) -> Tensor:
    """PRoM's "6D*" training matrix: raw columns [a1, a2, a1 x a2] (no normalisation, no orthogonalisation)."""
    cols = as_columns6(x6)
    a1, a2 = cols[..., 0], cols[..., 1]
    return torch.stack([a1, a2, torch.linalg.cross(a1, a2)], dim=-1)
