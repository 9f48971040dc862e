"""Evaluation metrics on (N, K, 3) point sets (metres in, per-sample errors out in the same unit).

- ``mpjpe`` / ``pve``: mean L2 distance per sample, optionally after subtracting a root joint.
- ``pa_mpjpe`` / ``pa_pve``: after SPIN's similarity alignment (with reflection fix), per sample.
- ``freihand_align``: FreiHAND's official alignment (unit-norm scaling, ``orthogonal_procrustes``, no reflection
  fix) — differs from SPIN's; ``freihand_errors`` / ``freihand_metrics`` reproduce the official evaluation
  (PA-MPJPE, PA-MPVPE, AUC over 0–50 mm with 100 thresholds, F@5 mm / F@15 mm on aligned vertices).

Inputs may be NumPy arrays or torch tensors; outputs are NumPy float64.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np

from hmr.geometry.procrustes import align_similarity_np

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821
Root = Optional[Union[int, Sequence[int]]]


def as_points(x: ArrayLike, name: str = "points") -> np.ndarray:
    """(N, K, 3) float64 NumPy array from a NumPy array or torch tensor; clear error otherwise."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, K, 3), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _pair(pred: ArrayLike, gt: ArrayLike):
    p, g = as_points(pred, "pred"), as_points(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    return p, g


def center_on(points: np.ndarray, root: Root) -> np.ndarray:
    """Subtract joint ``root`` (an index, or the mean of several indices, e.g. mid-hip) from every point."""
    if root is None:
        return points
    idx = [root] if isinstance(root, (int, np.integer)) else list(root)
    return points - points[:, idx].mean(axis=1, keepdims=True)


def mpjpe(pred: ArrayLike, gt: ArrayLike, root: Root = None) -> np.ndarray:
    """Mean per-joint position error per sample (N,), after subtracting ``root`` from each set if given."""
    p, g = _pair(pred, gt)
    return np.linalg.norm(center_on(p, root) - center_on(g, root), axis=-1).mean(axis=-1)


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """MPJPE per sample (N,) after SPIN's similarity alignment of ``pred`` onto ``gt``."""
    p, g = _pair(pred, gt)
    return np.linalg.norm(align_similarity_np(p, g) - g, axis=-1).mean(axis=-1)


def pve(pred_vertices: ArrayLike, gt_vertices: ArrayLike) -> np.ndarray:
    """Per-vertex error per sample (N,), no alignment (centre the meshes before calling, as the protocol says)."""
    p, g = _pair(pred_vertices, gt_vertices)
    return np.linalg.norm(p - g, axis=-1).mean(axis=-1)


def pa_pve(pred_vertices: ArrayLike, gt_vertices: ArrayLike) -> np.ndarray:
    """Per-vertex error per sample (N,) after SPIN's similarity alignment."""
    return pa_mpjpe(pred_vertices, gt_vertices)


def freihand_align(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """FreiHAND's official alignment of ``pred`` onto ``gt`` (N, K, 3), sample by sample.

    Both sets are centred and scaled to unit Frobenius norm; R, s = orthogonal_procrustes(gt_n, pred_n)
    (R may be a reflection: the official code does not fix it); pred_al = pred_n Rᵀ s ‖gt_c‖ + mean(gt).
    """
    p, g = _pair(pred, gt)
    mu_p, mu_g = p.mean(axis=1, keepdims=True), g.mean(axis=1, keepdims=True)
    pc, gc = p - mu_p, g - mu_g
    norm_p = np.linalg.norm(pc, axis=(1, 2), keepdims=True) + 1e-8
    norm_g = np.linalg.norm(gc, axis=(1, 2), keepdims=True) + 1e-8
    pn, gn = pc / norm_p, gc / norm_g
    # orthogonal_procrustes(A=gn, B=pn): R = U Vᵀ from svd(Aᵀ B), s = sum of singular values.
    U, S, Vt = np.linalg.svd(np.transpose(gn, (0, 2, 1)) @ pn)
    R = U @ Vt
    s = S.sum(axis=-1)[:, None, None]
    return pn @ np.transpose(R, (0, 2, 1)) * s * norm_g + mu_g


def pck_curve(distances: ArrayLike, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of ``distances`` (any shape) at or below each threshold (PCK as in FreiHAND's EvalUtil)."""
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("pck_curve needs at least one distance")
    return (d[None, :] <= np.asarray(thresholds, dtype=np.float64)[:, None]).mean(axis=1)


def auc(distances: ArrayLike, max_threshold: float = 0.05, num_thresholds: int = 100) -> float:
    """Area under the PCK curve over thresholds linspace(0, max_threshold, num), normalised to [0, 1]."""
    thresholds = np.linspace(0.0, max_threshold, num_thresholds)
    curve = pck_curve(distances, thresholds)
    return float(np.trapezoid(curve, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))


def nearest_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each point of ``source`` (M, 3), the distance to its nearest point in ``target`` (P, 3)."""
    from scipy.spatial import cKDTree

    return cKDTree(np.asarray(target, dtype=np.float64)).query(np.asarray(source, dtype=np.float64), k=1)[0]


def f_score(pred: ArrayLike, gt: ArrayLike, threshold: float) -> np.ndarray:
    """F-score per sample (N,) at ``threshold`` (same unit as the points); precision = fraction of predicted
    points within ``threshold`` (strict <) of the GT cloud, recall the other way, F = 2PR / (P + R)."""
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    p, g = as_points(pred, "pred"), as_points(gt, "gt")
    if p.shape[0] != g.shape[0]:
        raise ValueError(f"pred and gt must have the same number of samples: {p.shape[0]} vs {g.shape[0]}")
    out = np.zeros(p.shape[0])
    for i in range(p.shape[0]):
        precision = (nearest_distances(p[i], g[i]) < threshold).mean()
        recall = (nearest_distances(g[i], p[i]) < threshold).mean()
        out[i] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return out


def freihand_errors(pred_joints: ArrayLike, gt_joints: ArrayLike, pred_vertices: Optional[ArrayLike] = None,
                    gt_vertices: Optional[ArrayLike] = None) -> Dict[str, np.ndarray]:
    """Per-sample FreiHAND errors (metres): ``pa_mpjpe`` (N,), ``joint_distances`` (N, 21) after the official
    alignment, and with vertices ``pa_mpvpe`` (N,), ``vertex_distances`` (N, V), ``f@5mm`` and ``f@15mm`` (N,)."""
    pj, gj = _pair(pred_joints, gt_joints)
    joint_d = np.linalg.norm(freihand_align(pj, gj) - gj, axis=-1)
    out = {"pa_mpjpe": joint_d.mean(axis=1), "joint_distances": joint_d}
    if (pred_vertices is None) != (gt_vertices is None):
        raise ValueError("give both pred_vertices and gt_vertices, or neither")
    if pred_vertices is not None:
        pv, gv = _pair(pred_vertices, gt_vertices)
        aligned = freihand_align(pv, gv)
        vert_d = np.linalg.norm(aligned - gv, axis=-1)
        out.update({"pa_mpvpe": vert_d.mean(axis=1), "vertex_distances": vert_d,
                    "f@5mm": f_score(aligned, gv, 0.005), "f@15mm": f_score(aligned, gv, 0.015)})
    return out


def freihand_metrics(pred_joints: ArrayLike, gt_joints: ArrayLike, pred_vertices: Optional[ArrayLike] = None,
                     gt_vertices: Optional[ArrayLike] = None) -> Dict[str, float]:
    """FreiHAND summary: ``pa_mpjpe_mm``, ``auc_joints`` (0–50 mm), and with vertices ``pa_mpvpe_mm``,
    ``auc_vertices``, ``f@5mm``, ``f@15mm`` (means over samples)."""
    errors = freihand_errors(pred_joints, gt_joints, pred_vertices, gt_vertices)
    return summarize_freihand(errors)


def summarize_freihand(errors: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Summary numbers from :func:`freihand_errors` output (mm for distances, fractions for AUC/F)."""
    out = {"pa_mpjpe_mm": 1000.0 * float(errors["pa_mpjpe"].mean()),
           "auc_joints": auc(errors["joint_distances"])}
    if "pa_mpvpe" in errors:
        out.update({"pa_mpvpe_mm": 1000.0 * float(errors["pa_mpvpe"].mean()),
                    "auc_vertices": auc(errors["vertex_distances"]),
                    "f@5mm": float(errors["f@5mm"].mean()), "f@15mm": float(errors["f@15mm"].mean())})
    return out
