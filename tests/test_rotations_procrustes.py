"""special_procrustes: agreement with numpy SVD/roma, det<0 policy, backward at repeated singular values."""
import numpy as np
import pytest
import roma
import torch

from hmr.rotations import special_procrustes
from hmr.rotations.diagnostics import jacobian
from hmr.rotations.procrustes import special_procrustes_torch_svd


def numpy_special_procrustes(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    U[..., :, 2] *= d[..., None]
    return U @ Vt


def finite_difference_jacobian(M: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences of the float64 numpy oracle, (9, 9) for one matrix."""
    cols = []
    for k in range(9):
        E = np.zeros(9)
        E[k] = h
        plus = numpy_special_procrustes(M.numpy() + E.reshape(3, 3))
        minus = numpy_special_procrustes(M.numpy() - E.reshape(3, 3))
        cols.append(((plus - minus) / (2 * h)).reshape(9))
    return torch.from_numpy(np.stack(cols, axis=1))


@pytest.mark.parametrize("method", ["newton", "svd"])
def test_matches_numpy_oracle_gaussian_and_near(method):
    M = torch.randn(4000, 3, 3, dtype=torch.float64)
    M[:2000] = roma.random_rotmat(2000).double() + 0.1 * M[:2000]
    R = special_procrustes(M, method=method)
    assert (R - torch.from_numpy(numpy_special_procrustes(M.numpy()))).abs().max() < 1e-10
    assert (torch.linalg.det(R) - 1).abs().max() < 1e-12


def test_matches_roma_and_float32_accuracy():
    M = torch.randn(3000, 3, 3)
    ref = torch.from_numpy(numpy_special_procrustes(M.double().numpy()))
    R = special_procrustes(M)
    assert R.dtype == torch.float32
    assert (R.double() - ref).abs().max() < 1e-5
    assert (roma.special_procrustes(M.double()) - ref).abs().max() < 1e-9


def test_det_negative_policy_flips_smallest_direction():
    M = torch.diag(torch.tensor([3.0, 2.0, -0.5], dtype=torch.float64))
    R = special_procrustes(M)
    assert torch.allclose(R, torch.diag(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)))
    M = torch.diag(torch.tensor([-3.0, 2.0, 0.5], dtype=torch.float64))
    assert torch.allclose(special_procrustes(M), torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)))


@pytest.mark.parametrize("method", ["newton", "svd"])
def test_rank_deficient_and_orthogonal_inputs(method):
    """Special rows inside a batch large enough for the Newton path (its SVD fallback is exercised)."""
    M = torch.randn(300, 3, 3, dtype=torch.float64)
    M[0] = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    M[1] = torch.outer(torch.tensor([1.0, 2, 3]), torch.tensor([0.5, -1, 2])).double()
    M[2] = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    R = special_procrustes(M, method=method)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(R[0], eye)
    assert torch.isfinite(R).all() and torch.allclose(R.transpose(-1, -2) @ R, eye.expand(300, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(R), torch.ones(300, dtype=torch.float64))
    assert torch.allclose(R[3:], torch.from_numpy(numpy_special_procrustes(M[3:].numpy())))


@pytest.mark.parametrize("diag", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 1.0, 0.999)])
def test_backward_at_repeated_singular_values_is_finite_and_correct(diag):
    Q = roma.random_rotmat(1).double()[0]
    M = Q @ torch.diag(torch.tensor(diag, dtype=torch.float64))
    J = jacobian(lambda x: special_procrustes(x.reshape(-1, 3, 3)), M.reshape(1, 9))[0]
    assert torch.isfinite(J).all()
    assert (J - finite_difference_jacobian(M)).abs().max() < 1e-6


def test_naive_torch_svd_backward_is_nan_at_identity():
    """The pitfall our backward avoids (documents why the custom backward exists)."""
    M = torch.eye(3, dtype=torch.float64).requires_grad_(True)
    (special_procrustes_torch_svd(M) * torch.randn(3, 3, dtype=torch.float64)).sum().backward()
    assert not torch.isfinite(M.grad).all()


def test_gradcheck_det_positive_and_negative():
    M = torch.randn(6, 3, 3, dtype=torch.float64)
    M[3:, :, 0] *= -1
    M.requires_grad_(True)
    assert (torch.linalg.det(M[:3]) * torch.linalg.det(M[3:]) < 0).any()
    assert torch.autograd.gradcheck(special_procrustes, (M,))


def test_batch_shapes_chunking_and_errors():
    M = torch.randn(2, 9000, 3, 3)  # > one chunk
    assert special_procrustes(M).shape == (2, 9000, 3, 3)
    assert special_procrustes(torch.randn(0, 3, 3)).shape == (0, 3, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        special_procrustes(torch.randn(4, 9))
    with pytest.raises(ValueError, match="NaN"):
        special_procrustes(torch.full((2, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        special_procrustes(torch.randn(400, 3, 3).index_fill(0, torch.tensor([7]), float("inf")))
    with pytest.raises(ValueError, match="method"):
        special_procrustes(torch.randn(3, 3), method="qr")
    with pytest.raises(TypeError):
        special_procrustes(torch.ones(3, 3, dtype=torch.long))
