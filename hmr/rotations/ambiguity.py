"""PRoM Fig. 2a/b gradient-ambiguity experiment.

Random GT rotations R, raw predictions T = R + N(0, sigma^2) per entry, loss ||f(T) - R||_F^2 with f the
training-time map (Gram-Schmidt on T's first two columns, special Procrustes, or PRoM's identity). For the
entry t11 we compare the gradient dL/dt11 with the error t11 - r11: gradient descent moves t11 towards r11
only when both have the same sign. PRoM's gradient is exactly 2 (t11 - r11).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from hmr.rotations.gram_schmidt import gram_schmidt
from hmr.rotations.procrustes import special_procrustes

MAPPINGS: dict[str, Callable[[Tensor], Tensor]] = {
    "gram_schmidt": lambda T: gram_schmidt(T[..., :, :2]),
    "svd": special_procrustes,
    "prom": lambda T: T,
}


def random_rotations(n: int, generator: torch.Generator | None = None, dtype=torch.float64) -> Tensor:
    """Uniform rotations on SO(3) (normalised Gaussian quaternions)."""
    from hmr.rotations.conversions import quaternion_to_matrix

    q = torch.randn(n, 4, generator=generator, dtype=dtype)
    return quaternion_to_matrix(q)


def gradient_samples(mapping: str, R: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
    """(dL/dT (N, 3, 3), t11 - r11 (N,)) for L = ||f(T) - R||^2 summed over the batch (rows independent)."""
    T = T.detach().clone().requires_grad_(True)
    loss = ((MAPPINGS[mapping](T) - R) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, T)
    return grad, (T[:, 0, 0] - R[:, 0, 0]).detach()


def gradient_ambiguity(sigmas: Sequence[float] = (0.1, 0.5, 1.0), n: int = 2000, seed: int = 0) -> dict:
    """Run the experiment; returns {sigma: {mapping: {"delta", "grad_t11", "stats"}}} (tensors + floats)."""
    generator = torch.Generator().manual_seed(seed)
    result: dict = {}
    for sigma in sigmas:
        R = random_rotations(n, generator)
        T = R + sigma * torch.randn(n, 3, 3, generator=generator, dtype=R.dtype)
        result[float(sigma)] = {}
        for name in MAPPINGS:
            grad, delta = gradient_samples(name, R, T)
            g11 = grad[:, 0, 0]
            used = (grad[:, :, :2] if name == "gram_schmidt" else grad).reshape(n, -1)
            norms = torch.linalg.vector_norm(grad.reshape(n, -1), dim=-1)
            nonzero = (g11 != 0) & (delta != 0)
            flipped = (torch.sign(g11) != torch.sign(delta)) & nonzero
            q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=norms.dtype, device=norms.device)
            result[float(sigma)][name] = {
                "delta": delta,
                "grad_t11": g11,
                "stats": {
                    "n": n,
                    "frac_sign_flipped": float(flipped.double().mean()),
                    "frac_zero_gradient_t11": float((g11 == 0).double().mean()),
                    "corr_grad_vs_delta": float(torch.corrcoef(torch.stack([g11, delta]))[0, 1]),
                    "grad_norm_percentiles": dict(zip(("p5", "p25", "p50", "p75", "p95"),
                                                      map(float, norms.quantile(q)))),
                    "num_inputs_with_gradient": int((used.abs().amax(0) > 0).sum()),
                },
            }
    return result


def statistics_only(result: dict) -> dict:
    """Strip the per-sample tensors (for JSON)."""
    return {str(s): {m: v["stats"] for m, v in per.items()} for s, per in result.items()}


def plot_gradient_ambiguity(result: dict, path) -> None:
    """Scatter grid (rows: sigma, columns: mapping) of dL/dt11 against t11 - r11, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hmr.utils.io import atomic_open

    sigmas = list(result)
    mappings = list(next(iter(result.values())))
    fig, axes = plt.subplots(len(sigmas), len(mappings), figsize=(4 * len(mappings), 3.4 * len(sigmas)),
                             squeeze=False)
    for i, sigma in enumerate(sigmas):
        for j, name in enumerate(mappings):
            entry, ax = result[sigma][name], axes[i][j]
            ax.scatter(entry["delta"].numpy(), entry["grad_t11"].numpy(), s=2, alpha=0.4)
            ax.axhline(0, color="k", lw=0.5)
            ax.axvline(0, color="k", lw=0.5)
            flipped = entry["stats"]["frac_sign_flipped"]
            ax.set_title(f"{name}, sigma={sigma}: {100 * flipped:.1f}% sign-flipped", fontsize=9)
            ax.set_xlabel("t11 - r11")
            ax.set_ylabel("dL/dt11")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)
