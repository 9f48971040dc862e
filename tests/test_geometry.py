"""hmr.geometry: cameras against OpenCV / the weak-perspective definition; Procrustes against scipy."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmr.geometry import (align_similarity, align_similarity_np, bbox_info, camera_matrix, crop_to_full_camera,
                          default_focal, full_to_crop_camera, perspective_projection, similarity_transform)


def test_default_focal_is_image_diagonal():
    assert default_focal(480, 640) == pytest.approx(np.hypot(480, 640))
    t = default_focal(torch.tensor([3.0, 5.0]), torch.tensor([4.0, 12.0]))
    assert torch.allclose(t, torch.hypot(torch.tensor([3.0, 5.0]), torch.tensor([4.0, 12.0])))


def test_perspective_projection_matches_opencv():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2, 7, 3)) + np.array([0.0, 0.0, 5.0])
    K = camera_matrix(torch.tensor([900.0, 1200.0], dtype=torch.float64), torch.tensor([[480, 640], [720, 1280]]))
    ours = perspective_projection(torch.from_numpy(points), K).numpy()
    for b in range(2):
        ref, _ = cv2.projectPoints(points[b], np.zeros(3), np.zeros(3), K[b].numpy(), None)
        np.testing.assert_allclose(ours[b], ref[:, 0], rtol=1e-10)


def test_perspective_projection_never_returns_inf_and_checks_shapes():
    out = perspective_projection(torch.tensor([[[1.0, 1.0, 0.0]]]), torch.eye(3))
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="points"):
        perspective_projection(torch.zeros(1, 4, 2), torch.eye(3))
    with pytest.raises(ValueError, match="K"):
        perspective_projection(torch.zeros(1, 4, 3), torch.eye(4))


def test_bbox_info_is_cliff_eq5():
    center = torch.tensor([[300.0, 200.0], [10.0, 700.0]])
    scale = torch.tensor([1.5, 0.3])
    focal = torch.tensor([800.0, 1000.0])
    img_size = torch.tensor([[480.0, 640.0], [720.0, 1280.0]])
    info = bbox_info(center, scale, focal, img_size).numpy()
    for i in range(2):
        h, w = img_size[i].tolist()
        expected = np.array([center[i, 0] - w / 2, center[i, 1] - h / 2, scale[i] * 200]) / focal[i].item()
        np.testing.assert_allclose(info[i], expected, rtol=1e-6)


def test_full_camera_reproduces_the_weak_perspective_crop_projection():
    """Planar points (Z = 0 in the body frame) project identically through both cameras."""
    rng = np.random.default_rng(1)
    B = 4
    pts = torch.from_numpy(np.concatenate([rng.normal(scale=0.4, size=(B, 9, 2)), np.zeros((B, 9, 1))], -1))
    cam = torch.from_numpy(np.stack([rng.uniform(0.5, 1.2, B), rng.normal(0, 0.1, B), rng.normal(0, 0.1, B)], 1))
    center = torch.from_numpy(rng.uniform(100, 500, (B, 2)))
    scale = torch.from_numpy(rng.uniform(0.8, 2.0, B))
    img_size = torch.tensor([[480.0, 640.0]] * B, dtype=torch.float64)
    focal = default_focal(img_size[:, 0], img_size[:, 1]).double()
    transl = crop_to_full_camera(cam, center, scale, focal, img_size)
    full = perspective_projection(pts + transl[:, None], camera_matrix(focal, img_size))
    b = (200 * scale)[:, None, None]
    weak = center[:, None] + b / 2 * cam[:, None, :1] * (pts[..., :2] + cam[:, None, 1:])
    torch.testing.assert_close(full, weak, rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(full_to_crop_camera(transl, center, scale, focal, img_size), cam)


def _random_similarity(rng, B):
    R = Rotation.random(B, random_state=rng.integers(1 << 31)).as_matrix()
    return rng.uniform(0.5, 2.0, B), R, rng.normal(size=(B, 3))


def test_procrustes_recovers_an_exact_similarity():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 14, 3))
    s, R, t = _random_similarity(rng, 5)
    Y = s[:, None, None] * X @ np.transpose(R, (0, 2, 1)) + t[:, None]
    s_hat, R_hat, t_hat = similarity_transform(torch.from_numpy(X), torch.from_numpy(Y))
    np.testing.assert_allclose(s_hat.numpy(), s, rtol=1e-9)
    np.testing.assert_allclose(R_hat.numpy(), R, atol=1e-9)
    np.testing.assert_allclose(t_hat.numpy(), t, atol=1e-9)
    np.testing.assert_allclose(align_similarity_np(X, Y), Y, atol=1e-9)


def test_procrustes_rotation_matches_scipy_kabsch_with_noise_and_reflections():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 10, 3))
    Y = X * np.array([-1.0, 1.0, 1.0]) + 0.3 * rng.normal(size=X.shape)   # mirrored + noise
    _, R, _ = similarity_transform(torch.from_numpy(X), torch.from_numpy(Y))
    for b in range(6):
        ref, _ = Rotation.align_vectors(Y[b] - Y[b].mean(0), X[b] - X[b].mean(0))
        np.testing.assert_allclose(R[b].numpy(), ref.as_matrix(), atol=1e-8)
        assert np.linalg.det(R[b].numpy()) == pytest.approx(1.0)


def test_procrustes_is_differentiable_and_validates_shapes():
    X = torch.randn(2, 8, 3, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(2, 8, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: align_similarity(x, Y), (X,))
    with pytest.raises(ValueError, match="equal shapes"):
        align_similarity(torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))
    assert torch.isfinite(align_similarity(torch.zeros(1, 4, 3), torch.ones(1, 4, 3))).all()
