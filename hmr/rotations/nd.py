"""Rotations in n dimensions (SO(n), n >= 2): projections, parameterisations and a trainable rotation layer.

- ``procrustes_nd``: nearest rotation (SVD with the det fix on the smallest singular direction); backward
  in closed form, C_ij = B_ij / (s_i + s_j) in the right singular basis, so repeated singular values are fine.
- ``gram_schmidt_nd``: n-1 columns -> rotation, last column by the generalised cross product (det +1).
- ``householder_nd``: product of an even number of reflections (n if n is even, else n-1): every rotation.
- ``cayley``: (I - A)^-1 (I + A) for skew A; cannot reach rotations with eigenvalue -1 (angle pi).
- ``exp_map``: matrix exponential of skew A (surjective, periodic).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hmr.rotations.representations import householder_product


def _check_square(M: Tensor, what: str) -> int:
    if not isinstance(M, Tensor) or not M.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point torch.Tensor")
    if M.ndim < 2 or M.shape[-1] != M.shape[-2] or M.shape[-1] < 2:
        raise ValueError(f"{what}: expected square matrices (..., n, n) with n >= 2, got {tuple(M.shape)}")
    return M.shape[-1]


class _ProcrustesND(torch.autograd.Function):
    @staticmethod
    def forward(ctx, M: Tensor) -> Tensor:  # type: ignore[override]
        M64 = M.detach().double()
        U, S, Vh = torch.linalg.svd(M64)
        d = torch.linalg.det(U @ Vh)
        S = torch.cat([S[..., :-1], S[..., -1:] * d[..., None]], -1)  # signed smallest singular value
        U = torch.cat([U[..., :-1], U[..., -1:] * d[..., None, None]], -1)
        R = U @ Vh
        ctx.save_for_backward(R, Vh.transpose(-1, -2), S)
        return R.to(M.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_R: Tensor):  # type: ignore[override]
        R, V, S = ctx.saved_tensors
        G = grad_R.double()
        A = R.transpose(-1, -2) @ G
        B = V.transpose(-1, -2) @ (0.5 * (A - A.transpose(-1, -2))) @ V
        denom = S[..., :, None] + S[..., None, :]
        eps = 1e-12 * S[..., :1, None].abs().clamp_min(1.0)
        C = B * denom / (denom**2 + eps**2)  # damped B / (si + sj); B is zero on the diagonal
        return (2 * R @ V @ C @ V.transpose(-1, -2)).to(grad_R.dtype)


def procrustes_nd(M: Tensor) -> Tensor:
    """Nearest rotation to each (..., n, n) matrix (det < 0: flip the smallest singular direction)."""
    _check_square(M, "procrustes_nd")
    return _ProcrustesND.apply(M)


def gram_schmidt_nd(X: Tensor, eps: float = 1e-8) -> Tensor:
    """(..., n, n-1) columns -> rotation (..., n, n): modified Gram-Schmidt, last column completes det = +1.

    Degenerate (dependent) columns raise ValueError rather than return NaN.
    """
    if X.ndim < 2 or X.shape[-2] != X.shape[-1] + 1:
        raise ValueError(f"gram_schmidt_nd: expected (..., n, n-1), got {tuple(X.shape)}")
    n = X.shape[-2]
    cols: list[Tensor] = []
    for k in range(n - 1):
        v = X[..., k]
        for b in cols:
            v = v - (v * b).sum(-1, keepdim=True) * b
        norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        if bool((norm <= eps).any()):
            raise ValueError(f"gram_schmidt_nd: column {k} is (nearly) dependent on the previous ones")
        cols.append(v / norm)
    # Generalised cross product: component i of the completing column is the cofactor (-1)^(i+n-1) det(minor_i).
    B = torch.stack(cols, dim=-1)
    last = []
    for i in range(n):
        minor = torch.cat([B[..., :i, :], B[..., i + 1:, :]], dim=-2)
        last.append((-1) ** (i + n - 1) * torch.linalg.det(minor) if n > 2 else (-1) ** (i + 1) * minor[..., 0, 0])
    return torch.cat([B, torch.stack(last, -1)[..., None]], dim=-1)


def num_householder_reflections(n: int) -> int:
    """Even number of reflections that reaches all of SO(n)."""
    return n if n % 2 == 0 else n - 1


def householder_nd(v: Tensor, eps: float = 1e-12) -> Tensor:
    """Product of k reflections (..., k, n) -> (..., n, n); k must be even for a rotation (det +1)."""
    if v.ndim < 2 or v.shape[-2] % 2:
        raise ValueError(f"householder_nd: expected (..., k, n) with even k, got {tuple(v.shape)}")
    return householder_product(v, eps)


def skew_from_vector(a: Tensor, n: int) -> Tensor:
    """n(n-1)/2 parameters (...,) -> skew-symmetric (..., n, n) (upper triangle filled row by row)."""
    m = n * (n - 1) // 2
    if a.shape[-1] != m:
        raise ValueError(f"skew_from_vector: expected (..., {m}) for n = {n}, got {tuple(a.shape)}")
    iu = torch.triu_indices(n, n, offset=1, device=a.device)
    A = a.new_zeros(*a.shape[:-1], n, n)
    A[..., iu[0], iu[1]] = a
    return A - A.transpose(-1, -2)


def cayley(A: Tensor) -> Tensor:
    """Cayley map of skew (..., n, n): (I - A)^-1 (I + A)."""
    n = _check_square(A, "cayley")
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    return torch.linalg.solve(eye - A, eye + A)


def exp_map(A: Tensor) -> Tensor:
    """Matrix exponential of skew (..., n, n)."""
    _check_square(A, "exp_map")
    return torch.linalg.matrix_exp(A)


PARAMETERISATIONS = ("free", "procrustes", "gram_schmidt", "householder", "cayley", "exp")


class RotationLayer(nn.Module):
    """y = R x for x (..., n), with R in SO(n) parameterised as chosen.

    "free" is PRoM-style: training uses the raw n x n weight, eval projects it with ``procrustes_nd``;
    "procrustes" projects in training too; the others are exact parameterisations (always rotations).
    """

    def __init__(self, n: int, parameterisation: str = "free") -> None:
        super().__init__()
        if n < 2:
            raise ValueError(f"RotationLayer: n must be >= 2, got {n}")
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"RotationLayer: unknown parameterisation {parameterisation!r}; "
                             f"expected one of {PARAMETERISATIONS}")
        self.n, self.parameterisation = n, parameterisation
        eye = torch.eye(n)
        if parameterisation in ("free", "procrustes"):
            self.weight = nn.Parameter(eye.clone())
        elif parameterisation == "gram_schmidt":
            self.weight = nn.Parameter(eye[:, : n - 1].clone())
        elif parameterisation == "householder":
            k = num_householder_reflections(n)
            # Pairs of equal vectors give H(v)H(v) = I: start at the identity.
            v = torch.randn(k // 2, n) / math.sqrt(n)
            self.weight = nn.Parameter(v.repeat_interleave(2, dim=0))
        else:
            self.weight = nn.Parameter(torch.zeros(n * (n - 1) // 2))

    def matrix(self) -> Tensor:
        """The matrix applied now (raw for "free" in training mode, a rotation otherwise)."""
        p = self.parameterisation
        if p == "free":
            return self.weight if self.training else procrustes_nd(self.weight)
        if p == "procrustes":
            return procrustes_nd(self.weight)
        if p == "gram_schmidt":
            return gram_schmidt_nd(self.weight)
        if p == "householder":
            return householder_nd(self.weight)
        A = skew_from_vector(self.weight, self.n)
        return cayley(A) if p == "cayley" else exp_map(A)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n:
            raise ValueError(f"RotationLayer: expected inputs (..., {self.n}), got {tuple(x.shape)}")
        return x @ self.matrix().transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"n={self.n}, parameterisation={self.parameterisation!r}"
