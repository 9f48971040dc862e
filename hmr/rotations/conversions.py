"""Conversions between rotation matrices and axis-angle, quaternion (XYZW) and Euler angles.

Thin wrappers over roma (checked against scipy in tests) with shape checks. Matrices act on column vectors.
Quaternions are XYZW; ``matrix_to_quaternion`` returns the representative with w >= 0.
"""
from __future__ import annotations

import roma
import torch
from torch import Tensor


def _check_last(x: Tensor, size: int, what: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point torch.Tensor")
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{what}: expected a tensor of shape (..., {size}), got {tuple(x.shape)}")


def _check_matrix(R: Tensor, what: str) -> None:
    if not isinstance(R, Tensor) or not R.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point torch.Tensor")
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"{what}: expected a tensor of shape (..., 3, 3), got {tuple(R.shape)}")


def axis_angle_to_matrix(v: Tensor) -> Tensor:
    """Rotation vector (axis * angle in radians) (..., 3) -> rotation matrix (..., 3, 3). Finite gradient at 0."""
    _check_last(v, 3, "axis_angle_to_matrix")
    return roma.rotvec_to_rotmat(v)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> rotation vector with angle in [0, pi]."""
    _check_matrix(R, "matrix_to_axis_angle")
    return roma.rotmat_to_rotvec(R)


def quaternion_to_matrix(q: Tensor, eps: float = 1e-12) -> Tensor:
    """XYZW quaternion (..., 4), normalised here (|q| clamped at eps, so q = 0 gives a finite matrix)."""
    _check_last(q, 4, "quaternion_to_matrix")
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(eps)
    return roma.unitquat_to_rotmat(q)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> unit XYZW quaternion with w >= 0."""
    _check_matrix(R, "matrix_to_quaternion")
    q = roma.rotmat_to_unitquat(R)
    return torch.where(q[..., 3:] < 0, -q, q)


def euler_to_matrix(angles: Tensor, convention: str = "XYZ") -> Tensor:
    """Euler angles in radians (..., 3) -> matrix. Convention as scipy: upper case intrinsic, lower extrinsic."""
    _check_last(angles, 3, "euler_to_matrix")
    return roma.euler_to_rotmat(convention, angles)


def matrix_to_euler(R: Tensor, convention: str = "XYZ") -> Tensor:
    """Rotation matrix (..., 3, 3) -> Euler angles (..., 3) in radians (scipy's convention strings)."""
    _check_matrix(R, "matrix_to_euler")
    return roma.rotmat_to_euler(convention, R)


def geodesic_distance(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle in radians of R1^T R2 (..., ) — roma's numerically robust form."""
    _check_matrix(R1, "geodesic_distance")
    _check_matrix(R2, "geodesic_distance")
    return roma.rotmat_geodesic_distance(R1, R2)
