"""The gradient report behind tools/analyze_gradients.py: Jacobian spectra, closed-form checks, lambda_min,
condition-number distributions and the PRoM Fig. 2 gradient-ambiguity experiment."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from hmr.rotations.ambiguity import gradient_ambiguity, plot_gradient_ambiguity, random_rotations, statistics_only
from hmr.rotations.diagnostics import (gram_schmidt_jacobian_singular_values, jacobian, lambda_min_bbt,
                                       procrustes_condition, procrustes_jacobian_singular_values, spectrum)
from hmr.rotations.representations import get


def _quantiles(x: Tensor) -> dict[str, float]:
    x = x[torch.isfinite(x)].double()
    q = torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64, device=x.device)
    return dict(zip(("median", "p90", "p99"), map(float, x.quantile(q)))) | {"max": float(x.max()),
                                                                           "n": int(x.numel())}


def _inputs(kind: str, n: int, generator: torch.Generator) -> Tensor:
    if kind == "gaussian":
        return torch.randn(n, 3, 3, generator=generator, dtype=torch.float64)
    return random_rotations(n, generator) + 0.1 * torch.randn(n, 3, 3, generator=generator, dtype=torch.float64)


def mapping_spectra(n: int, generator: torch.Generator) -> dict:
    """Autograd Jacobian spectra of each representation's training map at inputs encoding R + noise."""
    out = {}
    for name in ("prom", "svd9d", "6d", "6d_free", "quaternion", "axis_angle", "householder"):
        rep = get(name)
        R = random_rotations(n, generator)
        x = rep.encode(R) + 0.1 * torch.randn(n, rep.dim, generator=generator, dtype=R.dtype)
        J = jacobian(lambda t: rep.train_matrix(t), x)
        sp = spectrum(J)
        out[name] = {"dim": rep.dim, "rank_values": sorted(set(sp.rank.tolist())),
                     "condition": _quantiles(sp.condition),
                     "lambda_min_BBt": _quantiles(lambda_min_bbt(J)),
                     "lambda_min_nonzero_BBt": _quantiles(lambda_min_bbt(J, nonzero_only=True))}
    return out


def closed_form_checks(n: int, generator: torch.Generator) -> dict:
    """Max relative error of the closed-form singular values against autograd, by det sign."""
    M = torch.randn(n, 3, 3, generator=generator, dtype=torch.float64)
    rep = get("svd9d")
    s_auto = spectrum(jacobian(lambda t: rep.train_matrix(t), M.reshape(n, 9))).singular_values[:, :3]
    s_closed = procrustes_jacobian_singular_values(M)
    rel = ((s_auto - s_closed).abs() / s_closed).amax(-1)
    negative = torch.linalg.det(M) < 0
    x6 = torch.randn(n, 6, generator=generator, dtype=torch.float64)
    g_auto = spectrum(jacobian(lambda t: get("6d").train_matrix(t), x6)).singular_values[:, :3]
    g_closed = gram_schmidt_jacobian_singular_values(x6)
    return {"procrustes_max_rel_error_det_pos": float(rel[~negative].max()),
            "procrustes_max_rel_error_det_neg": float(rel[negative].max()),
            "gram_schmidt_max_rel_error": float(((g_auto - g_closed).abs() / g_closed).max())}


def condition_distributions(n: int, generator: torch.Generator) -> dict:
    """Special-Procrustes condition (s1+s2)/(s2+s3_signed) for Gaussian and near-rotation inputs, by det sign."""
    out = {}
    for kind in ("gaussian", "near"):
        M = _inputs(kind, n, generator)
        cond = procrustes_condition(M)
        negative = torch.linalg.det(M) < 0
        out[kind] = {"frac_det_negative": float(negative.double().mean()),
                     "det_positive": _quantiles(cond[~negative]),
                     "det_negative": _quantiles(cond[negative]) if bool(negative.any()) else None}
    return out


def plot_conditions(n: int, generator: torch.Generator, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hmr.utils.io import atomic_open

    M = _inputs("gaussian", n, generator)
    cond = procrustes_condition(M)
    negative = torch.linalg.det(M) < 0
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = torch.logspace(0, 3, 60).numpy()
    ax.hist(cond[~negative].clamp(max=999).numpy(), bins=bins, alpha=0.6, label="det > 0")
    ax.hist(cond[negative].clamp(max=999).numpy(), bins=bins, alpha=0.6, label="det < 0 (signed s3)")
    ax.set_xscale("log")
    ax.set_xlabel("(s1+s2)/(s2+s3)")
    ax.set_ylabel("count")
    ax.set_title("Special-Procrustes Jacobian condition, N(0,1) matrices")
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)


def gradient_report(out_dir: Path, n: int = 2000, seed: int = 0) -> dict:
    """Compute everything, write PNGs into out_dir, return the JSON-ready dict."""
    out_dir = Path(out_dir)
    generator = torch.Generator().manual_seed(seed)
    ambiguity = gradient_ambiguity(n=n, seed=seed)
    plot_gradient_ambiguity(ambiguity, out_dir / "gradient_ambiguity.png")
    plot_conditions(n, generator, out_dir / "procrustes_condition.png")
    return {
        "protocol": {"n": n, "seed": seed, "dtype": "float64",
                     "ambiguity": "R uniform, T = R + N(0, sigma^2), L = ||f(T) - R||_F^2, gradient on t11"},
        "closed_form_checks": closed_form_checks(min(n, 500), generator),
        "procrustes_condition": condition_distributions(n, generator),
        "mapping_spectra_near_rotations": mapping_spectra(min(n, 500), generator),
        "gradient_ambiguity": statistics_only(ambiguity),
        "figures": ["gradient_ambiguity.png", "procrustes_condition.png"],
    }
