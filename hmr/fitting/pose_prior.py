"""A Gaussian-mixture pose prior on the local joint rotations (SMPLify, Bogo et al. 2016, Sec. 3.2 Eq. 5),
fitted here to samples of the project's synthetic pose prior (:mod:`hmr.data.synthetic.pose_prior`) instead of
CMU mocap, because that prior is what the open models and the synthetic sets are drawn from.

Each pose is the axis-angle of the non-root joints, flattened ((J-1)·3 values: 69 for SMPL, 45 for MANO).
The energy is the negative log-likelihood of the mixture, shifted so that its minimum possible value is 0:

    E(θ) = −log Σ_c w_c N(θ; μ_c, Σ_c) + max_c log(w_c |Σ_c|^{-1/2} (2π)^{-D/2})

(SMPLify uses the max-component approximation; the log-sum-exp used here is its smooth form.) The joint
limits of the synthetic prior are inside it: its samples are clipped to them.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

from hmr.rotations import matrix_to_axis_angle

log = logging.getLogger(__name__)
_CACHE: Dict[str, "PoseGMM"] = {}


@dataclass
class PoseGMM:
    """Mixture weights ``log_weights`` (C,), means (C, D), precision Cholesky factors ``prec_chol`` (C, D, D)
    with Σ_c⁻¹ = P_c P_cᵀ (lower triangular), and ``log_norm`` (C,) = log w_c + log|P_c| − D/2 log 2π."""

    log_weights: Tensor
    means: Tensor
    prec_chol: Tensor
    log_norm: Tensor

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def to(self, *args, **kwargs) -> "PoseGMM":
        return PoseGMM(*(t.to(*args, **kwargs) for t in (self.log_weights, self.means, self.prec_chol, self.log_norm)))

    def log_likelihood(self, x: Tensor) -> Tensor:
        """(B, D) → (B, C) log w_c N(x; μ_c, Σ_c)."""
        # (x − μ)ᵀ P = xᵀP − μᵀP, one (B, D) × (D, C·D) product
        C, D = self.means.shape
        z = (x @ self.prec_chol.permute(1, 0, 2).reshape(D, C * D)).view(-1, C, D)
        z = z - torch.einsum("cd,cde->ce", self.means, self.prec_chol)[None]
        return self.log_norm[None] - 0.5 * (z * z).sum(-1)

    def energy(self, x: Tensor) -> Tensor:
        """(B, D) poses → (B,) negative log-likelihood, shifted to be ≥ 0."""
        return self.log_norm.max() - torch.logsumexp(self.log_likelihood(x), dim=1)

    def energy_rotations(self, local_rotmats: Tensor) -> Tensor:
        """(B, J-1, 3, 3) local rotations (no root) → (B,) energy."""
        return self.energy(matrix_to_axis_angle(local_rotmats).reshape(local_rotmats.shape[0], -1))


def right_jacobian_inverse(theta: Tensor) -> Tensor:
    """J_r⁻¹(θ) (..., 3, 3) for axis-angle θ (..., 3): log(exp(θ)·exp(δ)) = θ + J_r⁻¹(θ) δ + O(‖δ‖²), with
    J_r(θ) = I − (1 − cos φ)/φ² [θ]× + (φ − sin φ)/φ³ [θ]×², φ = ‖θ‖ (Taylor terms below φ = 1e-3)."""
    phi2 = (theta * theta).sum(-1, keepdim=True)[..., None]
    phi = phi2.clamp_min(1e-12).sqrt()
    small = phi < 1e-3
    c1 = torch.where(small, 0.5 - phi2 / 24.0, (1 - torch.cos(phi)) / phi2.clamp_min(1e-12))
    c2 = torch.where(small, 1.0 / 6.0 - phi2 / 120.0, (phi - torch.sin(phi)) / (phi2 * phi).clamp_min(1e-12))
    x, y, z = theta.unbind(-1)
    zero = torch.zeros_like(x)
    hat = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(theta.shape + (3,))
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    return torch.linalg.inv(eye - c1 * hat + c2 * (hat @ hat))


def fit_gmm(x: Tensor, components: int, iterations: int = 20, reg: float = 1e-4, seed: int = 0) -> PoseGMM:
    """Expectation-maximisation for a full-covariance mixture on (N, D) samples (float64 inside; ``reg`` is
    added to every covariance's diagonal). Means start at distinct random samples."""
    x = x.double()
    n, d = x.shape
    gen = torch.Generator().manual_seed(seed)
    means = x[torch.randperm(n, generator=gen)[:components]].clone()
    eye = torch.eye(d, dtype=x.dtype)
    cov = (torch.cov(x.T) + reg * eye).expand(components, d, d).clone()
    weights = torch.full((components,), 1.0 / components, dtype=x.dtype)
    for _ in range(iterations):
        gmm = _from_moments(weights, means, cov)
        resp = torch.softmax(gmm.log_likelihood(x), dim=1)          # (N, C) responsibilities
        count = resp.sum(0) + 1e-9
        weights = count / n
        means = (resp.T @ x) / count[:, None]
        cov = torch.stack([((x - means[c]) * resp[:, c:c + 1]).T @ (x - means[c]) for c in range(components)])
        cov = cov / count[:, None, None] + reg * eye
    return _from_moments(weights, means, cov)


def _from_moments(weights: Tensor, means: Tensor, cov: Tensor) -> PoseGMM:
    d = means.shape[1]
    chol = torch.linalg.cholesky(cov)
    prec_chol = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=cov.dtype).expand_as(cov), upper=False)
    prec_chol = prec_chol.transpose(1, 2)                            # P = L⁻ᵀ, so P Pᵀ = Σ⁻¹
    log_det = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(1)
    log_w = torch.log(weights.clamp_min(1e-12))
    return PoseGMM(log_w, means, prec_chol, log_w + log_det - 0.5 * d * math.log(2 * math.pi))


def _synthetic_samples(body_model, count: int, seed: int) -> Optional[np.ndarray]:
    """(count, J-1, 3, 3) local rotations from the synthetic prior for this model, or None if it cannot build one."""
    from hmr.data.synthetic.pose_prior import BodyPosePrior, HandPosePrior
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        out = body_model()
        rest = out.joints[0].double().cpu().numpy()
        if body_model.kind == "body":
            return BodyPosePrior(rest).sample(rng, count)[0]
        if "freihand21" not in body_model.keypoint_sets():
            return None
        tips = body_model.keypoints(out.vertices, out.joints, "freihand21")[0, [4, 8, 12, 16, 20]]
        right = "left" not in body_model.name
        return HandPosePrior(rest, tips.double().cpu().numpy(), right=right).sample(rng, count)[0]


def synthetic_pose_gmm(body_model, components: int = 4, samples: int = 2000, seed: int = 0) -> Optional[PoseGMM]:
    """The mixture prior for ``body_model`` fitted to ``samples`` draws of the synthetic pose prior (cached per
    model geometry and settings; about a second the first time). None when no synthetic prior exists for it."""
    with torch.no_grad():
        rest = body_model().joints[0].double().cpu().numpy()
    key = hashlib.sha1(rest.tobytes() + f"{body_model.name}|{components}|{samples}|{seed}".encode()).hexdigest()
    if key not in _CACHE:
        try:
            rot = _synthetic_samples(body_model, samples, seed)
        except ValueError as exc:  # a model whose rest pose is not in the SMPL/MANO frame
            log.warning("no synthetic pose prior for %s: %s", body_model.name, exc)
            rot = None
        if rot is None:
            return None
        aa = matrix_to_axis_angle(torch.as_tensor(rot, dtype=torch.float64)).reshape(samples, -1)
        _CACHE[key] = fit_gmm(aa, components, seed=seed).to(torch.float32)
    dev = body_model.v_template.device
    return _CACHE[key].to(dev)
