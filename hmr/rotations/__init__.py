"""Rotation representations, orthogonalizers, conversions and gradient diagnostics.

Public API: ``get(name, **kw)``, ``names()``, ``special_procrustes``, ``gram_schmidt``,
``symmetric_gram_schmidt``, conversions, ``matrix_stats`` (online diagnostics) and the n-D maps in
``hmr.rotations.nd``. See docs/rotations.md.
"""
from hmr.rotations.conversions import (
    axis_angle_to_matrix,
    euler_to_matrix,
    geodesic_distance,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from hmr.rotations.diagnostics import MatrixStats, matrix_stats, summarize_stats
from hmr.rotations.gram_schmidt import gram_schmidt, matrix_to_6d, symmetric_gram_schmidt
from hmr.rotations.procrustes import special_procrustes
from hmr.rotations.representations import REGISTRY, Representation, get, householder_product, names
from hmr.rotations.scale_free import ScaleFreePRoM

REGISTRY[ScaleFreePRoM.name] = ScaleFreePRoM  # PRoM with an SVD-free, scale-free training matrix (issue 9)

__all__ = [
    "MatrixStats", "Representation", "axis_angle_to_matrix", "euler_to_matrix", "geodesic_distance", "get",
    "gram_schmidt", "householder_product", "matrix_stats", "matrix_to_6d", "matrix_to_axis_angle",
    "matrix_to_euler", "matrix_to_quaternion", "names", "quaternion_to_matrix", "special_procrustes",
    "summarize_stats", "symmetric_gram_schmidt",
]
