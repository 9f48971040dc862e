"""Gradient diagnostics of rotation mappings: Jacobians, spectra, closed forms, online matrix statistics.

Closed forms (checked against autograd in tests/test_rotations_diagnostics.py):
- special Procrustes M -> R (9x9 Jacobian, Frobenius norms): rank 3, nonzero singular values 2/(si+sj) with the
  *signed* smallest singular value s3 (negative when det M < 0); condition (s1+s2)/(s2+s3).
- 6D Gram-Schmidt (9x6): rank 3, singular values sqrt(2)/r1 and sqrt(2) * svals([[1/r1, 0], [-c/(r1 r2), 1/r2]])
  with r1 = |a1|, r2 = |a2 - (a2.b1) b1|, c = a2.b1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


def jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-sample Jacobian of ``fn`` at x (B, n_in) -> (B, n_out, n_in); fn must act row-wise.

    One backward pass per output entry (samples are independent, so summing over the batch is exact).
    Works with custom autograd functions that do not support vmap.
    """
    if x.ndim != 2:
        raise ValueError(f"jacobian: expected x of shape (B, n_in), got {tuple(x.shape)}")
    x = x.detach().requires_grad_(True)
    y = fn(x).reshape(x.shape[0], -1)
    rows = []
    for k in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, k].sum(), x, retain_graph=k + 1 < y.shape[1], allow_unused=True)
        rows.append(torch.zeros_like(x) if g is None else g)
    return torch.stack(rows, dim=1)


@dataclass
class Spectrum:
    """Singular values (descending), numerical rank, and condition number over the nonzero part."""

    singular_values: Tensor
    rank: Tensor
    condition: Tensor


def spectrum(J: Tensor, rtol: float = 1e-7) -> Spectrum:
    """Spectrum of Jacobians J (..., n_out, n_in); values below rtol * max count as zero."""
    s = torch.linalg.svdvals(J)
    nonzero = s > rtol * s[..., :1]
    rank = nonzero.sum(-1)
    smallest = torch.where(nonzero, s, torch.full_like(s, float("inf"))).amin(-1)
    return Spectrum(s, rank, s[..., 0] / smallest)


def lambda_min_bbt(J: Tensor, nonzero_only: bool = False, rtol: float = 1e-7) -> Tensor:
    """Smallest eigenvalue of B B^T for B = J (n_out x n_in), PRoM's Theorem 2 quantity.

    With B the Jacobian of the output mapping, B B^T is the output-space kernel of gradient descent; it is
    I (lambda_min = 1) for PRoM's identity map and singular (0) for any map onto the 3-dim SO(3), whose
    Jacobian has rank 3. ``nonzero_only`` returns the smallest nonzero eigenvalue instead (the rate along
    the rotation manifold).
    """
    ev = torch.linalg.eigvalsh(J @ J.transpose(-1, -2))
    if not nonzero_only:
        return ev[..., 0].clamp_min(0.0)
    keep = ev > rtol * ev[..., -1:]
    return torch.where(keep, ev, torch.full_like(ev, float("inf"))).amin(-1)


def signed_singular_values(M: Tensor) -> Tensor:
    """Singular values (..., 3) of 3x3 matrices with s3 negated where det(M) < 0."""
    s = torch.linalg.svdvals(M)
    sign = torch.where(torch.linalg.det(M) < 0, -1.0, 1.0).to(s)
    return torch.cat([s[..., :2], s[..., 2:] * sign[..., None]], dim=-1)


def procrustes_jacobian_singular_values(M: Tensor) -> Tensor:
    """Closed-form nonzero singular values (..., 3) of d special_procrustes / dM, descending."""
    s = signed_singular_values(M)
    pairs = torch.stack([s[..., 0] + s[..., 1], s[..., 0] + s[..., 2], s[..., 1] + s[..., 2]], -1)
    return (2.0 / pairs).sort(dim=-1, descending=True).values


def procrustes_condition(M: Tensor) -> Tensor:
    """(s1 + s2) / (s2 + s3) with signed s3: the special-Procrustes Jacobian's condition number."""
    s = signed_singular_values(M)
    return (s[..., 0] + s[..., 1]) / (s[..., 1] + s[..., 2])


def gram_schmidt_jacobian_singular_values(x6: Tensor) -> Tensor:
    """Closed-form nonzero singular values (..., 3) of d gram_schmidt / d x6, descending."""
    cols = x6.reshape(*x6.shape[:-1], 3, 2)
    a1, a2 = cols[..., 0], cols[..., 1]
    r1 = torch.linalg.vector_norm(a1, dim=-1)
    b1 = a1 / r1[..., None]
    c = (a2 * b1).sum(-1)
    r2 = torch.linalg.vector_norm(a2 - c[..., None] * b1, dim=-1)
    block = torch.zeros(*r1.shape, 2, 2, dtype=x6.dtype, device=x6.device)
    block[..., 0, 0] = 1 / r1
    block[..., 1, 0] = -c / (r1 * r2)
    block[..., 1, 1] = 1 / r2
    s = torch.cat([(1 / r1)[..., None], torch.linalg.svdvals(block)], dim=-1) * 2**0.5
    return s.sort(dim=-1, descending=True).values


@dataclass
class MatrixStats:
    """Per-matrix statistics of raw 3x3 predictions (see ``matrix_stats``)."""

    singular_values: Tensor  # (..., 3) descending, s3 signed (negative where det < 0)
    det_sign: Tensor  # (...,) +1 / -1 (0 for exactly singular)
    condition: Tensor  # (...,) (s1 + s2) / (s2 + s3_signed); inf/negative means "at/over the discontinuity"


@torch.no_grad()
def matrix_stats(M: Tensor) -> MatrixStats:
    """Online diagnostic for raw (unorthogonalized) matrices (..., 3, 3); no autograd, about 2 ms for 1,536.

    The condition number is that of the special-Procrustes Jacobian at M: how unevenly SVD-in-the-loop would
    scale the three rotation gradient modes, and how far M is from the det < 0 discontinuity (s2 + s3 = 0).
    """
    if M.ndim < 2 or M.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_stats: expected (..., 3, 3), got {tuple(M.shape)}")
    M = M.detach()
    s = torch.linalg.svdvals(M)
    det_sign = torch.sign(torch.linalg.det(M))
    s_signed = torch.cat([s[..., :2], s[..., 2:] * torch.where(det_sign < 0, -1.0, 1.0).to(s)[..., None]], -1)
    condition = (s_signed[..., 0] + s_signed[..., 1]) / (s_signed[..., 1] + s_signed[..., 2])
    return MatrixStats(s_signed, det_sign, condition)


def summarize_stats(stats: MatrixStats) -> dict[str, float]:
    """Scalars to log: fraction with det < 0, singular-value and condition-number percentiles."""
    s = stats.singular_values.reshape(-1, 3).double()
    cond = stats.condition.reshape(-1).double()
    finite = cond[torch.isfinite(cond) & (cond > 0)]
    q = torch.tensor([0.5, 0.99], dtype=torch.float64, device=cond.device)
    cq = finite.quantile(q) if finite.numel() else torch.full((2,), float("nan"), dtype=torch.float64)
    return {
        "frac_det_negative": float((stats.det_sign.reshape(-1) < 0).double().mean()),
        "s1_median": float(s[:, 0].median()),
        "s3_signed_min": float(s[:, 2].min()),
        "s3_signed_median": float(s[:, 2].median()),
        "condition_median": float(cq[0]),
        "condition_p99": float(cq[1]),
        "condition_max": float(finite.max()) if finite.numel() else float("nan"),
        "frac_over_discontinuity": float(((cond <= 0) | ~torch.isfinite(cond)).double().mean()),
    }
