"""SO(n) maps and the RotationLayer."""
import pytest
import torch
from scipy.linalg import expm

from hmr.rotations.nd import (PARAMETERISATIONS, RotationLayer, cayley, exp_map, gram_schmidt_nd, householder_nd,
                              num_householder_reflections, procrustes_nd, skew_from_vector)


def numpy_procrustes(M):
    import numpy as np

    U, _, Vt = np.linalg.svd(M)
    U[..., :, -1] *= np.sign(np.linalg.det(U @ Vt))[..., None]
    return U @ Vt


def assert_rotation(R, tol=1e-10):
    n = R.shape[-1]
    assert (R.transpose(-1, -2) @ R - torch.eye(n, dtype=R.dtype)).abs().max() < tol
    assert (torch.linalg.det(R) - 1).abs().max() < tol


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_procrustes_nd_oracle_and_gradcheck(n):
    M = torch.randn(8, n, n, dtype=torch.float64)
    R = procrustes_nd(M)
    assert_rotation(R)
    assert (R - torch.from_numpy(numpy_procrustes(M.numpy()))).abs().max() < 1e-10
    assert torch.autograd.gradcheck(procrustes_nd, (M[:3].clone().requires_grad_(True),))


def test_procrustes_nd_backward_finite_at_identity():
    M = torch.eye(5, dtype=torch.float64).requires_grad_(True)
    (procrustes_nd(M) * torch.randn(5, 5, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(M.grad).all()


@pytest.mark.parametrize("n", [2, 3, 5])
def test_gram_schmidt_nd(n):
    X = torch.randn(10, n, n - 1, dtype=torch.float64)
    R = gram_schmidt_nd(X)
    assert_rotation(R)
    # first column keeps the direction of the first input column
    assert torch.allclose(R[..., 0], X[..., 0] / X[..., 0].norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="dependent"):
        gram_schmidt_nd(torch.ones(1, n, n - 1, dtype=torch.float64) if n > 2 else torch.zeros(1, 2, 1))


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_householder_cayley_exp(n):
    k = num_householder_reflections(n)
    assert_rotation(householder_nd(torch.randn(4, k, n, dtype=torch.float64)))
    with pytest.raises(ValueError, match="even"):
        householder_nd(torch.randn(4, 3, n))
    a = torch.randn(4, n * (n - 1) // 2, dtype=torch.float64)
    A = skew_from_vector(a, n)
    assert torch.allclose(A, -A.transpose(-1, -2))
    assert_rotation(cayley(A))
    assert torch.allclose(exp_map(A)[0], torch.from_numpy(expm(A[0].numpy())))
    # Cayley satisfies (I - A) C = I + A
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose((eye - A) @ cayley(A), eye + A)


@pytest.mark.parametrize("p", PARAMETERISATIONS)
def test_rotation_layer_learns_a_rotation(p):
    torch.manual_seed(0)
    n = 4
    target = procrustes_nd(torch.randn(n, n, dtype=torch.float64)).float()
    layer = RotationLayer(n, p)
    optim = torch.optim.Adam(layer.parameters(), lr=0.05)
    x = torch.randn(256, n)
    layer.train()
    first = None
    for _ in range(150):
        loss = ((layer(x) - x @ target.T) ** 2).mean()
        first = float(loss.detach()) if first is None else first
        optim.zero_grad()
        loss.backward()
        optim.step()
    layer.eval()
    R = layer.matrix().detach().double()
    assert_rotation(R, 1e-4)
    with torch.no_grad():
        assert float(((layer(x) - x @ target.T) ** 2).mean()) < first


def test_rotation_layer_free_is_raw_in_training():
    layer = RotationLayer(3, "free")
    with torch.no_grad():
        layer.weight.mul_(2.0)
    layer.train()
    assert torch.allclose(layer.matrix(), 2 * torch.eye(3))
    layer.eval()
    assert torch.allclose(layer.matrix(), torch.eye(3))
    with pytest.raises(ValueError, match="parameterisation"):
        RotationLayer(3, "quaternion")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        layer(torch.randn(2, 4))
