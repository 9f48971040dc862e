"""Diagnostics: closed-form Jacobian spectra vs autograd, lambda_min, online stats, ambiguity experiment."""
import numpy as np
import pytest
import roma
import torch

from hmr.rotations import get, gram_schmidt, matrix_stats, special_procrustes, summarize_stats
from hmr.rotations.ambiguity import gradient_ambiguity
from hmr.rotations.diagnostics import (gram_schmidt_jacobian_singular_values, jacobian, lambda_min_bbt,
                                       procrustes_condition, procrustes_jacobian_singular_values, spectrum)


def test_jacobian_matches_finite_differences():
    x = torch.randn(3, 4, dtype=torch.float64)
    fn = lambda t: torch.stack([t[:, 0] * t[:, 1], torch.sin(t[:, 2]) + t[:, 3] ** 2], -1)  # noqa: E731
    J = jacobian(fn, x)
    h = 1e-6
    fd = torch.stack([(fn(x + h * torch.eye(4, dtype=x.dtype)[k]) - fn(x - h * torch.eye(4, dtype=x.dtype)[k]))
                      / (2 * h) for k in range(4)], -1)
    assert torch.allclose(J, fd, atol=1e-8)


def test_procrustes_closed_form_uses_signed_s3():
    M = torch.randn(300, 3, 3, dtype=torch.float64)
    negative = torch.linalg.det(M) < 0
    assert negative.any() and (~negative).any()
    J = jacobian(lambda t: special_procrustes(t.reshape(-1, 3, 3)), M.reshape(-1, 9))
    sp = spectrum(J)
    assert (sp.rank == 3).all()
    closed = procrustes_jacobian_singular_values(M)
    assert ((sp.singular_values[:, :3] - closed).abs() / closed).max() < 1e-8
    assert torch.allclose(sp.condition, procrustes_condition(M), rtol=1e-8)
    # the unsigned formula is wrong for det < 0 (the published statement only holds for det > 0)
    s = torch.linalg.svdvals(M[negative])
    unsigned = (s[:, 0] + s[:, 1]) / (s[:, 1] + s[:, 2])
    assert (unsigned - sp.condition[negative]).abs().max() > 1e-2


def test_gram_schmidt_closed_form():
    x6 = torch.randn(300, 6, dtype=torch.float64)
    sp = spectrum(jacobian(gram_schmidt, x6))
    assert (sp.rank == 3).all()
    closed = gram_schmidt_jacobian_singular_values(x6)
    assert ((sp.singular_values[:, :3] - closed).abs() / closed).max() < 1e-8
    orthonormal = get("6d").encode(roma.random_rotmat(5).double())
    assert torch.allclose(gram_schmidt_jacobian_singular_values(orthonormal), torch.full((5, 3), 2**0.5, dtype=torch.float64))


def test_lambda_min_bbt():
    x = torch.randn(20, 9, dtype=torch.float64)
    J_prom = jacobian(lambda t: get("prom").train_matrix(t), x)
    assert torch.allclose(lambda_min_bbt(J_prom), torch.ones(20, dtype=torch.float64))
    J_svd = jacobian(lambda t: get("svd9d").train_matrix(t), x)
    assert lambda_min_bbt(J_svd).max() < 1e-10
    expected = procrustes_jacobian_singular_values(x.reshape(-1, 3, 3))[:, -1] ** 2
    assert torch.allclose(lambda_min_bbt(J_svd, nonzero_only=True), expected, rtol=1e-8)


def test_matrix_stats_against_numpy():
    M = torch.randn(500, 3, 3)
    stats = matrix_stats(M)
    s = np.linalg.svd(M.double().numpy(), compute_uv=False)
    d = np.sign(np.linalg.det(M.double().numpy()))
    assert np.allclose(stats.singular_values[:, :2].numpy(), s[:, :2], atol=1e-5)
    assert np.allclose(stats.singular_values[:, 2].numpy(), d * s[:, 2], atol=1e-5)
    assert np.array_equal(stats.det_sign.numpy(), d)
    assert np.allclose(stats.condition.numpy(), (s[:, 0] + s[:, 1]) / (s[:, 1] + d * s[:, 2]), rtol=1e-4)
    summary = summarize_stats(stats)
    assert abs(summary["frac_det_negative"] - (d < 0).mean()) < 1e-12
    assert summary["condition_median"] > 1
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_stats(torch.randn(4, 9))


def test_gradient_ambiguity_prom_never_flips_and_others_do():
    result = gradient_ambiguity(sigmas=(0.5,), n=400, seed=1)[0.5]
    assert result["prom"]["stats"]["frac_sign_flipped"] == 0.0
    assert torch.allclose(result["prom"]["grad_t11"], 2 * result["prom"]["delta"])
    assert result["svd"]["stats"]["frac_sign_flipped"] > 0.05
    assert result["gram_schmidt"]["stats"]["frac_sign_flipped"] > 0.05
    assert result["gram_schmidt"]["stats"]["num_inputs_with_gradient"] == 6
