"""Rotation representations: what a network outputs, what training sees, what inference returns.

Every representation states where orthogonalization happens: ``train_map`` names the mapping from raw output
to the training matrix (what losses and forward kinematics see), ``inference_map`` the mapping to the proper
rotation used at inference. PRoM (Table 3a of its paper) is ``train_map="identity"``, ``inference_map="svd"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hmr.rotations.conversions import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from hmr.rotations.gram_schmidt import complete_6d_free, gram_schmidt, matrix_to_6d, symmetric_gram_schmidt
from hmr.rotations.procrustes import special_procrustes


class Representation:
    """Base class. Subclasses set ``name``, ``dim``, ``train_map``, ``inference_map`` and the two maps."""

    name: str = ""
    dim: int = 0
    train_map: str = ""
    inference_map: str = ""

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"{self.name}: expected a floating-point torch.Tensor of shape (..., {self.dim})")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"{self.name}: expected shape (..., {self.dim}), got {tuple(x.shape)}")

    def train_matrix(self, x: Tensor) -> Tensor:
        """Raw output (..., dim) -> the (..., 3, 3) matrix that training losses and FK see."""
        self._check(x)
        return self._train(x)

    def inference_rotation(self, x: Tensor) -> Tensor:
        """Raw output (..., dim) -> proper rotation (..., 3, 3)."""
        self._check(x)
        return self._infer(x)

    def encode(self, R: Tensor) -> Tensor:
        """Rotation (..., 3, 3) -> raw target (..., dim) with inference_rotation(encode(R)) == R."""
        raise NotImplementedError(f"{self.name} has no meaningful encoding of a rotation")

    def extra_loss(self, x: Tensor, R_gt: Tensor) -> Tensor:
        """Representation-specific loss terms (mean over the batch); zero by default."""
        return x.new_zeros(())

    def _train(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _infer(self, x: Tensor) -> Tensor:
        return self._train(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, train={self.train_map}, " \
               f"inference={self.inference_map})"


def _as_matrix9(x: Tensor) -> Tensor:
    """Row-major: x[..., 3 * i + j] = M[..., i, j]."""
    return x.reshape(*x.shape[:-1], 3, 3)


PROM_ORTHOGONALIZERS = {
    "svd": special_procrustes,
    "gram_schmidt": lambda M: gram_schmidt(M[..., :, :2]),
    "symmetric_gram_schmidt": symmetric_gram_schmidt,
}


class PRoM(Representation):
    """9 numbers; training uses the raw 3x3 unchanged; inference orthogonalizes (default SVD)."""

    name, dim, train_map = "prom", 9, "identity"

    def __init__(self, inference: str = "svd") -> None:
        if inference == "unbiased_gram_schmidt":
            inference = "symmetric_gram_schmidt"
        if inference not in PROM_ORTHOGONALIZERS:
            raise ValueError(f"prom: unknown inference orthogonalizer {inference!r}; "
                             f"expected one of {sorted(PROM_ORTHOGONALIZERS)}")
        self.inference_map = inference
        self._orthogonalize = PROM_ORTHOGONALIZERS[inference]

    def _train(self, x: Tensor) -> Tensor:
        return _as_matrix9(x)

    def _infer(self, x: Tensor) -> Tensor:
        return self._orthogonalize(_as_matrix9(x))

    def encode(self, R: Tensor) -> Tensor:
        return R.reshape(*R.shape[:-2], 9)


class SVD9D(PRoM):
    """Levinson et al. 2020: special Procrustes (SVD) in training and at inference."""

    name, train_map = "svd9d", "svd"

    def __init__(self) -> None:
        super().__init__("svd")

    def _train(self, x: Tensor) -> Tensor:
        return special_procrustes(_as_matrix9(x))


class SixD(Representation):
    """Zhou et al. 2019: Gram-Schmidt on the first two columns, in training and at inference."""

    name, dim, train_map, inference_map = "6d", 6, "gram_schmidt", "gram_schmidt"

    def _train(self, x: Tensor) -> Tensor:
        return gram_schmidt(x)

    def encode(self, R: Tensor) -> Tensor:
        return matrix_to_6d(R)


class SixDFree(SixD):
    """PRoM's 6D*: training matrix [a1, a2, a1 x a2] with no normalisation; Gram-Schmidt at inference."""

    name, train_map = "6d_free", "columns+cross"

    def _train(self, x: Tensor) -> Tensor:
        return complete_6d_free(x)

    def _infer(self, x: Tensor) -> Tensor:
        return gram_schmidt(x)


class AxisAngle(Representation):
    name, dim, train_map, inference_map = "axis_angle", 3, "rodrigues", "rodrigues"

    def _train(self, x: Tensor) -> Tensor:
        return axis_angle_to_matrix(x)

    def encode(self, R: Tensor) -> Tensor:
        return matrix_to_axis_angle(R)


class Quaternion(Representation):
    """XYZW, normalised in both training and inference; targets have w >= 0."""

    name, dim, train_map, inference_map = "quaternion", 4, "normalize", "normalize"

    def _train(self, x: Tensor) -> Tensor:
        return quaternion_to_matrix(x)

    def encode(self, R: Tensor) -> Tensor:
        return matrix_to_quaternion(R)


class Euler(Representation):
    name, dim, train_map, inference_map = "euler", 3, "euler", "euler"

    def __init__(self, convention: str = "XYZ") -> None:
        self.convention = convention

    def _train(self, x: Tensor) -> Tensor:
        return euler_to_matrix(x, self.convention)

    def encode(self, R: Tensor) -> Tensor:
        return matrix_to_euler(R, self.convention)


def _sign_table() -> Tensor:
    """8 sign patterns for (x, y, z); w is kept >= 0 (q and -q are the same rotation)."""
    return torch.tensor([[1.0 - 2.0 * ((c >> k) & 1) for k in range(3)] for c in range(8)])


class SphericalExpQuaternion(Representation):
    """Liao, Gavves & Snoek 2019 spherical regression on unit quaternions (XYZW).

    x[..., :4] are logits o with |q| = sqrt(softmax(o)); x[..., 4:12] are logits of the 8 sign classes of
    (x, y, z) (w >= 0). The training matrix uses the *predicted* signs (argmax, no gradient: the sign is
    discrete); the sign classifier is trained by ``extra_loss`` (cross-entropy against the GT class).
    """

    name, dim, train_map, inference_map = "sexp_quat", 12, "sexp+argmax-sign", "sexp+argmax-sign"

    def __init__(self, sign_weight: float = 1.0) -> None:
        self.sign_weight = sign_weight

    def _quaternion(self, x: Tensor) -> Tensor:
        magnitudes = torch.sqrt(torch.softmax(x[..., :4], dim=-1))
        signs = _sign_table().to(x)[x[..., 4:].argmax(dim=-1)]
        return torch.cat([magnitudes[..., :3] * signs, magnitudes[..., 3:]], dim=-1)

    def _train(self, x: Tensor) -> Tensor:
        return quaternion_to_matrix(self._quaternion(x))

    @staticmethod
    def sign_class(R: Tensor) -> Tensor:
        """GT sign class (long) of rotations (..., 3, 3): bit k set where component k of q (w >= 0) is < 0."""
        q = matrix_to_quaternion(R)
        bits = (q[..., :3] < 0).long()
        return bits[..., 0] + 2 * bits[..., 1] + 4 * bits[..., 2]

    def encode(self, R: Tensor) -> Tensor:
        q = matrix_to_quaternion(R)
        logits = torch.log(q * q + 1e-24)  # softmax(logits) = q^2 to ~1e-24
        return torch.cat([logits, F.one_hot(self.sign_class(R), 8).to(q)], dim=-1)

    def extra_loss(self, x: Tensor, R_gt: Tensor) -> Tensor:
        self._check(x)
        target = self.sign_class(R_gt).reshape(-1)
        return self.sign_weight * F.cross_entropy(x[..., 4:].reshape(-1, 8), target)


class Householder(Representation):
    """R = H(v1) H(v2), H(v) = I - 2 v v^T / max(v^T v, eps): two reflections give every rotation in SO(3).

    Exactly orthogonal with det +1 whenever |v1|^2, |v2|^2 >= eps (so training and inference coincide).
    """

    name, dim, train_map, inference_map = "householder", 6, "householder", "householder"

    def __init__(self, eps: float = 1e-12) -> None:
        self.eps = eps

    def _train(self, x: Tensor) -> Tensor:
        return householder_product(x.reshape(*x.shape[:-1], 2, 3), self.eps)

    def encode(self, R: Tensor) -> Tensor:
        rotvec = matrix_to_axis_angle(R)
        angle = torch.linalg.vector_norm(rotvec, dim=-1, keepdim=True)
        e_z = torch.zeros_like(rotvec)
        e_z[..., 2] = 1.0
        axis = torch.where(angle > 1e-12, rotvec / angle.clamp_min(1e-12), e_z)
        # u: a unit vector orthogonal to the axis; v1 = u rotated about the axis by angle / 2.
        k = axis.abs().argmin(dim=-1, keepdim=True)
        u = torch.linalg.cross(axis, torch.zeros_like(axis).scatter_(-1, k, 1.0))
        u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        v1 = (axis_angle_to_matrix(axis * angle / 2) @ u[..., None]).squeeze(-1)
        return torch.cat([v1, u], dim=-1)


def householder_product(v: Tensor, eps: float = 1e-12) -> Tensor:
    """Product H(v_0) H(v_1) ... of reflections given as (..., k, n) vectors; returns (..., n, n)."""
    n = v.shape[-1]
    result = torch.eye(n, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], n, n)
    for i in range(v.shape[-2]):
        vi = v[..., i, :]
        scale = 2.0 / (vi * vi).sum(-1).clamp_min(eps)
        # M H(v) = M - scale (M v) v^T
        Mv = (result @ vi[..., None]).squeeze(-1)
        result = result - scale[..., None, None] * Mv[..., :, None] * vi[..., None, :]
    return result


REGISTRY: dict[str, type[Representation]] = {
    cls.name: cls
    for cls in (PRoM, SVD9D, SixD, SixDFree, AxisAngle, Quaternion, Euler, SphericalExpQuaternion, Householder)
}


def names() -> list[str]:
    """Registered representation names."""
    return list(REGISTRY)


def get(name: str, **kwargs) -> Representation:
    """Build a representation by name (``names()`` lists them); kwargs go to its constructor."""
    if name not in REGISTRY:
        raise KeyError(f"unknown rotation representation {name!r}; expected one of {names()}")
    return REGISTRY[name](**kwargs)
