"""Joint regressors fitted to rest meshes of many shapes.

- Kinematic regressor (J, V): for each joint, weights on its ``neighbours`` nearest vertices (mean shape) that
  sum to one and minimise sum_i |X_i^T w - j_i|^2 + lam |w|^2 over the sample shapes (closed form:
  w = Q^-1 1 / (1^T Q^-1 1), Q = sum_i D_i D_i^T + lam I with D_i = X_i - j_i). Weights may be negative;
  it is only ever applied to rest meshes (as SMPL's J_regressor).
- Evaluation regressor (K, V): non-negative, sum-to-one, spread-out weights on a local neighbourhood that
  reproduce a target point on the mean shape, so it can be applied to *posed* meshes of any shape and follows
  the surface (H36M-17-like joints, as SPIN's J_regressor_h36m on SMPL). Not fitted across shapes: Anny's
  bone heads do not move with the surface for extreme phenotypes, which no non-negative local weights follow.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import cKDTree


def _centred_blocks(meshes: np.ndarray, targets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """D (N, K, 3) = X_i - j_i for one joint's candidate vertices ids."""
    return meshes[:, ids, :] - targets[:, None, :]


def fit_sum_to_one(meshes: np.ndarray, targets: np.ndarray, neighbours: int,
                   ridge: float) -> Tuple[np.ndarray, Dict[str, float]]:
    """Kinematic regressor from meshes (N, V, 3) and joints (N, J, 3); returns (J, V) and errors in mm."""
    mean_mesh = meshes.mean(axis=0)
    tree = cKDTree(mean_mesh)
    regressor = np.zeros((targets.shape[1], meshes.shape[1]))
    for j in range(targets.shape[1]):
        _, ids = tree.query(targets[:, j].mean(axis=0), k=min(neighbours, meshes.shape[1]))
        ids = np.sort(ids)
        blocks = _centred_blocks(meshes, targets[:, j], ids)
        q = np.einsum("nkc,nlc->kl", blocks, blocks)
        q += ridge * np.trace(q) / len(ids) * np.eye(len(ids))
        solved = np.linalg.solve(q, np.ones(len(ids)))
        regressor[j, ids] = solved / solved.sum()
    errors = np.linalg.norm(np.einsum("jv,nvc->njc", regressor, meshes) - targets, axis=-1) * 1000
    return regressor, {"mean_mm": float(errors.mean()), "max_mm": float(errors.max()),
                       "negative_weights": int((regressor < 0).sum())}


def fit_nonnegative_local(mesh: np.ndarray, targets: np.ndarray, candidates: np.ndarray,
                          ridge: float = 1e-3, exactness: float = 1e3) -> Tuple[np.ndarray, List[Dict[str, float]]]:
    """Evaluation regressor (K, V): for each target point (K, 3) on the mean ``mesh`` (V, 3), the most spread
    non-negative weights over its ``candidates`` (K, V) boolean mask that sum to one and reproduce the point.

    Solved as non-negative least squares: ``exactness`` weights the point and sum-to-one rows, ``ridge`` is a
    small |w|^2 term that spreads the weights over the whole neighbourhood instead of the 4 that suffice.
    """
    regressor = np.zeros((len(targets), len(mesh)))
    stats = []
    for k, target in enumerate(targets):
        ids = np.flatnonzero(candidates[k])
        if len(ids) < 4:
            raise ValueError(f"evaluation joint {k}: only {len(ids)} candidate vertices")
        offsets = (mesh[ids] - target).T  # (3, n)
        lhs = np.concatenate([exactness * offsets, np.sqrt(ridge) * np.eye(len(ids)),
                              exactness * np.ones((1, len(ids)))])
        rhs = np.concatenate([np.zeros(3 + len(ids)), [exactness]])
        weights, _ = nnls(lhs, rhs, maxiter=50 * len(ids))
        weights /= weights.sum()
        regressor[k, ids] = weights
        err = np.linalg.norm(weights @ mesh[ids] - target) * 1000
        used = ids[weights > 1e-6]
        stats.append({"candidates": int(len(ids)), "nonzero": int(len(used)), "rest_error_mm": float(err),
                      "radius_mm": float(np.linalg.norm(mesh[used] - target, axis=1).max() * 1000)})
    return regressor, stats
