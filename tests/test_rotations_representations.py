"""Representation registry: contract, round trips, dtypes, gradients, degenerate inputs, error paths."""
import pytest
import roma
import torch

from hmr.rotations import get, gram_schmidt, names, symmetric_gram_schmidt
from hmr.rotations.representations import SphericalExpQuaternion

ALL = names()


def is_proper_rotation(R: torch.Tensor, tol: float) -> bool:
    eye = torch.eye(3, dtype=R.dtype)
    return bool(((R.transpose(-1, -2) @ R - eye).abs().max() < tol) and ((torch.linalg.det(R) - 1).abs().max() < tol))


def test_registry_names():
    assert set(ALL) >= {"prom", "svd9d", "6d", "6d_free", "axis_angle", "quaternion", "euler", "sexp_quat",
                        "householder"}
    with pytest.raises(KeyError, match="expected one of"):
        get("rotor")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_contract_shapes_dtypes_and_gradients(name, dtype):
    rep = get(name)
    x = torch.randn(4, 5, rep.dim, dtype=dtype, requires_grad=True)
    M = rep.train_matrix(x)
    R = rep.inference_rotation(x)
    assert M.shape == R.shape == (4, 5, 3, 3) and M.dtype == R.dtype == dtype
    assert is_proper_rotation(R, 1e-5 if dtype == torch.float32 else 1e-10)
    (M.sum() + R.sum() + rep.extra_loss(x, roma.random_rotmat(20).to(dtype).reshape(4, 5, 3, 3))).backward()
    assert torch.isfinite(x.grad).all()
    assert isinstance(rep.train_map, str) and isinstance(rep.inference_map, str)


@pytest.mark.parametrize("name", ALL)
def test_encode_roundtrip(name):
    rep = get(name)
    R = roma.random_rotmat(200).double()
    R[0] = torch.eye(3, dtype=torch.float64)
    R[1] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # angle pi
    x = rep.encode(R)
    assert x.shape == (200, rep.dim)
    assert (rep.inference_rotation(x) - R).abs().max() < 1e-6
    assert (rep.train_matrix(x) - R).abs().max() < 1e-6


def test_wrong_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 9\)"):
        get("prom").train_matrix(torch.randn(3, 6))
    with pytest.raises(TypeError):
        get("6d").inference_rotation(torch.ones(3, 6, dtype=torch.long))


def test_prom_is_identity_in_training_and_inference_options():
    x = torch.randn(10, 9, dtype=torch.float64)
    assert torch.equal(get("prom").train_matrix(x), x.reshape(10, 3, 3))
    for option in ("svd", "gram_schmidt", "symmetric_gram_schmidt", "unbiased_gram_schmidt"):
        assert is_proper_rotation(get("prom", inference=option).inference_rotation(x), 1e-10)
    R_gs = get("prom", inference="gram_schmidt").inference_rotation(x)
    assert torch.allclose(R_gs, gram_schmidt(x.reshape(10, 3, 3)[..., :2]))
    with pytest.raises(ValueError, match="orthogonalizer"):
        get("prom", inference="qr")


def test_6d_free_training_matrix_is_raw_columns_and_cross():
    x = torch.randn(7, 6, dtype=torch.float64)
    M = get("6d_free").train_matrix(x)
    a = x.reshape(7, 3, 2)
    assert torch.equal(M[..., :2], a)
    assert torch.allclose(M[..., 2], torch.linalg.cross(a[..., 0], a[..., 1]))
    assert torch.allclose(get("6d_free").inference_rotation(x), gram_schmidt(x))


def test_gram_schmidt_matches_roma_and_handles_parallel_columns():
    x = torch.randn(50, 3, 2, dtype=torch.float64)
    assert torch.allclose(gram_schmidt(x), roma.special_gramschmidt(x))
    degenerate = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]],  # parallel
                               [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]],  # zero first column
                               [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    R = gram_schmidt(degenerate)
    assert is_proper_rotation(R, 1e-12)
    R.sum().backward()
    assert torch.isfinite(degenerate.grad).all()


def test_symmetric_gram_schmidt_is_order_free():
    M = torch.randn(30, 3, 3, dtype=torch.float64)
    swapped = M[..., [1, 0, 2]]
    R, Rs = symmetric_gram_schmidt(M), symmetric_gram_schmidt(swapped)
    assert is_proper_rotation(R, 1e-12)
    assert torch.allclose(R[..., :2], Rs[..., [1, 0]])  # swapping inputs swaps outputs
    c1 = M[..., 0] / M[..., 0].norm(dim=-1, keepdim=True)
    c2 = M[..., 1] / M[..., 1].norm(dim=-1, keepdim=True)
    # both columns move by the same angle
    assert torch.allclose((R[..., 0] * c1).sum(-1), (R[..., 1] * c2).sum(-1))


def test_sexp_quat_signs_and_loss():
    rep = SphericalExpQuaternion()
    R = roma.random_rotmat(64).double()
    x = rep.encode(R)
    assert rep.extra_loss(x, R) < rep.extra_loss(x, R @ roma.rotvec_to_rotmat(torch.tensor([3.0, 0, 0]).double()))
    logits = torch.zeros(64, 12, dtype=torch.float64, requires_grad=True)
    loss = rep.extra_loss(logits, R)
    assert torch.allclose(loss, torch.log(torch.tensor(8.0, dtype=torch.float64)))  # uniform over 8 classes
    loss.backward()
    assert logits.grad[:, :4].abs().max() == 0 and logits.grad[:, 4:].abs().max() > 0
    wrong = x.clone()
    wrong[:, 4:] = torch.roll(wrong[:, 4:], 1, dims=-1)  # wrong sign class
    assert (rep.inference_rotation(wrong) - R).abs().amax((-2, -1)).max() > 1e-3


def test_householder_is_exact_rotation_and_finite_at_zero():
    rep = get("householder")
    x = torch.zeros(3, 6, dtype=torch.float64, requires_grad=True)
    R = rep.train_matrix(x)
    assert torch.isfinite(R).all()
    R.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_encode_not_implemented_message():
    from hmr.rotations.representations import Representation

    class Dummy(Representation):
        name, dim = "dummy", 2

    with pytest.raises(NotImplementedError, match="dummy"):
        Dummy().encode(torch.eye(3))
