"""Conversions against scipy's Rotation (float64, 1e-6) on random and edge-case inputs."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.rotations import (axis_angle_to_matrix, euler_to_matrix, geodesic_distance, matrix_to_axis_angle,
                           matrix_to_euler, matrix_to_quaternion, quaternion_to_matrix)


def edge_rotvecs() -> np.ndarray:
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(20, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-9, 1e-4, math.pi / 2, math.pi - 1e-6, math.pi] * 3 + [2.0, 3.0])[:20]
    coord = np.eye(3) * math.pi  # rotations by pi about the coordinate axes
    return np.concatenate([axes * angles[:, None], coord, rng.normal(size=(200, 3))])


def same_rotvec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal as rotations: compare matrices (rotvec at angle pi has two signs)."""
    return np.abs(Rotation.from_rotvec(a).as_matrix() - Rotation.from_rotvec(b).as_matrix()).max()


def test_axis_angle_roundtrip_vs_scipy():
    v = edge_rotvecs()
    R = axis_angle_to_matrix(torch.from_numpy(v))
    assert np.abs(R.numpy() - Rotation.from_rotvec(v).as_matrix()).max() < 1e-6
    back = matrix_to_axis_angle(R).numpy()
    assert same_rotvec(back, v) < 1e-6
    assert np.all(np.linalg.norm(back, axis=1) <= math.pi + 1e-9)


def test_quaternion_xyzw_vs_scipy_and_w_nonnegative():
    R = Rotation.from_rotvec(edge_rotvecs())
    q = matrix_to_quaternion(torch.from_numpy(R.as_matrix())).numpy()
    q_ref = R.as_quat()  # XYZW
    assert np.abs(np.abs((q * q_ref).sum(1)) - 1).max() < 1e-6
    assert (q[:, 3] >= 0).all()
    back = quaternion_to_matrix(torch.from_numpy(3.0 * q)).numpy()  # scale is normalised away
    assert np.abs(back - R.as_matrix()).max() < 1e-6


def test_zero_quaternion_is_finite():
    assert torch.isfinite(quaternion_to_matrix(torch.zeros(2, 4, dtype=torch.float64))).all()


@pytest.mark.parametrize("convention", ["XYZ", "ZYX", "xyz", "ZXZ"])
def test_euler_vs_scipy_including_gimbal_lock(convention):
    rng = np.random.default_rng(1)
    angles = rng.uniform(-math.pi, math.pi, size=(100, 3))
    angles[:, 1] = rng.uniform(-math.pi / 2, math.pi / 2, size=100) if convention[0] != convention[2] \
        else rng.uniform(0, math.pi, size=100)
    lock = math.pi / 2 if convention[0] != convention[2] else 0.0
    angles[:10, 1] = lock  # gimbal lock
    R_ref = Rotation.from_euler(convention, angles).as_matrix()
    R = euler_to_matrix(torch.from_numpy(angles), convention).numpy()
    assert np.abs(R - R_ref).max() < 1e-6
    back = matrix_to_euler(torch.from_numpy(R_ref), convention)
    assert np.abs(euler_to_matrix(back, convention).numpy() - R_ref).max() < 1e-6


def test_geodesic_distance_vs_scipy():
    a, b = Rotation.random(50, random_state=2), Rotation.random(50, random_state=3)
    d = geodesic_distance(torch.from_numpy(a.as_matrix()), torch.from_numpy(b.as_matrix())).numpy()
    assert np.abs(d - (a.inv() * b).magnitude()).max() < 1e-6


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        axis_angle_to_matrix(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_quaternion(torch.zeros(2, 9))
    with pytest.raises(TypeError):
        quaternion_to_matrix(np.zeros((2, 4)))
