"""Rotation benchmarks: Zhou 2019 rotation recovery (auto-encoder) and orthogonalizer speed/accuracy.

Rotation recovery: input a flattened uniform random rotation (row-major, 9), MLP 9-128-128-128-dim with
LeakyReLU, loss ||train_matrix(out) - R||_F^2 (+ the representation's extra_loss), Adam; test on uniform
rotations through inference_rotation; geodesic error in degrees (mean / max / std / median).
"""
from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from hmr.rotations.ambiguity import random_rotations
from hmr.rotations.conversions import geodesic_distance
from hmr.rotations.procrustes import _procrustes_svd64, special_procrustes, special_procrustes_torch_svd
from hmr.rotations.representations import get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryPreset:
    iterations: int
    batch_size: int
    lr: float
    lr_final: float  # cosine decay to this (quick) / step to it at lr_step (paper)
    lr_step: int | None
    test_size: int


PRESETS = {
    # Fits all representations in <= 10 min on a 2-core CPU: larger batch and lr than the paper, cosine decay.
    "quick": RecoveryPreset(iterations=6000, batch_size=256, lr=1e-3, lr_final=1e-5, lr_step=None,
                            test_size=100_000),
    # Zhou et al. 2019 schedule: batch 64, Adam 1e-5, 500k iterations; their code lowers lr to 1e-6 at 10k.
    "paper": RecoveryPreset(iterations=500_000, batch_size=64, lr=1e-5, lr_final=1e-6, lr_step=10_000,
                            test_size=100_000),
    # For tests only.
    "tiny": RecoveryPreset(iterations=30, batch_size=32, lr=1e-3, lr_final=1e-4, lr_step=None, test_size=500),
}

PUBLISHED = {  # mean / max / std geodesic error in degrees (Zhou 2019 Table; PRoM paper's table)
    "6d": (0.49, 1.98, 0.27),
    "prom": (0.37, 1.86, 0.22),
}


def error_summary(err_deg: Tensor) -> dict:
    """Mean / median / max / std of geodesic errors in degrees (the rotation benchmarks' table columns)."""
    return {"mean_deg": float(err_deg.mean()), "median_deg": float(err_deg.median()),
            "max_deg": float(err_deg.max()), "std_deg": float(err_deg.std())}


def recovery_mlp(out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(9, 128), nn.LeakyReLU(), nn.Linear(128, 128), nn.LeakyReLU(),
                         nn.Linear(128, 128), nn.LeakyReLU(), nn.Linear(128, out_dim))


def _lr_at(preset: RecoveryPreset, it: int) -> float:
    if preset.lr_step is not None:
        return preset.lr if it < preset.lr_step else preset.lr_final
    cos = 0.5 * (1 + math.cos(math.pi * it / max(1, preset.iterations)))
    return preset.lr_final + (preset.lr - preset.lr_final) * cos


def rotation_recovery(name: str, preset: RecoveryPreset, seed: int = 0, **rep_kwargs) -> dict:
    """Train and test one representation; returns errors in degrees and the training time."""
    rep = get(name, **rep_kwargs)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = recovery_mlp(rep.dim)
    optim = torch.optim.Adam(model.parameters(), lr=preset.lr)
    start = time.perf_counter()
    for it in range(preset.iterations):
        for group in optim.param_groups:
            group["lr"] = _lr_at(preset, it)
        R = random_rotations(preset.batch_size, generator, torch.float32)
        out = model(R.reshape(-1, 9))
        loss = ((rep.train_matrix(out) - R) ** 2).sum((-2, -1)).mean() + rep.extra_loss(out, R)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    train_s = time.perf_counter() - start
    test_gen = torch.Generator().manual_seed(10_000 + seed)
    errors = []
    with torch.no_grad():
        for chunk in range(0, preset.test_size, 20_000):
            R = random_rotations(min(20_000, preset.test_size - chunk), test_gen, torch.float32)
            pred = rep.inference_rotation(model(R.reshape(-1, 9)))
            errors.append(torch.rad2deg(geodesic_distance(pred.double(), R.double())))
    err = torch.cat(errors)
    return {"representation": name, **error_summary(err), "train_seconds": train_s,
            "final_loss": float(loss.detach()), "test_size": preset.test_size}


def recovery_table(rows: list[dict], preset_name: str) -> str:
    """Markdown table of recovery results with the published numbers alongside."""
    lines = [f"Rotation recovery (Zhou 2019 auto-encoder), preset `{preset_name}`, geodesic error in degrees "
             f"on {rows[0]['test_size'] if rows else 0} uniform test rotations.", "",
             "| representation | mean | max | std | median | published mean/max/std | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = PUBLISHED.get(r["representation"])
        pub_s = "/".join(f"{v:.2f}" for v in pub) if pub else "-"
        lines.append(f"| {r['representation']} | {r['mean_deg']:.3f} | {r['max_deg']:.2f} | {r['std_deg']:.3f} | "
                     f"{r['median_deg']:.3f} | {pub_s} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- orthogonalizer speed / accuracy


def sample_matrices(kind: str, n: int, generator: torch.Generator, dtype=torch.float32) -> Tensor:
    """"gaussian": iid N(0, 1) entries (an untrained head, ~50% det < 0); "near": R + N(0, 0.1^2)."""
    if kind == "gaussian":
        return torch.randn(n, 3, 3, generator=generator, dtype=torch.float64).to(dtype)
    if kind == "near":
        R = random_rotations(n, generator)
        return (R + 0.1 * torch.randn(n, 3, 3, generator=generator, dtype=torch.float64)).to(dtype)
    raise ValueError(f"unknown matrix distribution {kind!r}; expected 'gaussian' or 'near'")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fwd_bwd(orthogonalize: Callable[[Tensor], Tensor], M: Tensor, G: Tensor) -> Callable[[], object]:
    def run():
        X = M.detach().requires_grad_(True)
        (orthogonalize(X) * G).sum().backward()
    return run


def orthogonalizer_speed(batch_sizes=(64, 1536, 100_000), kinds=("gaussian", "near"), repeats: int = 7,
                         dtype=torch.float32, seed: int = 0) -> list[dict]:
    """Ours (special_procrustes, default method) vs torch.linalg.svd + det fix, timed interleaved.

    For each repeat both methods run back to back in alternating order; ratios are median(baseline) /
    median(ours) and the median of per-repeat ratios. Accuracy: max |R - R_ref| against float64 SVD.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for kind in kinds:
        for B in batch_sizes:
            M = sample_matrices(kind, B, generator, dtype)
            G = torch.randn(B, 3, 3, generator=generator, dtype=torch.float64).to(dtype)
            ref = _procrustes_svd64(M.double())
            dev_ours = float((special_procrustes(M).double() - ref).abs().max())
            dev_base = float((special_procrustes_torch_svd(M).double() - ref).abs().max())
            tasks = {
                "fwd": (lambda: special_procrustes(M), lambda: special_procrustes_torch_svd(M)),
                "fwd+bwd": (_fwd_bwd(special_procrustes, M, G), _fwd_bwd(special_procrustes_torch_svd, M, G)),
            }
            for mode, (ours, base) in tasks.items():
                ours(), base()  # warm-up
                t_ours, t_base = [], []
                for r in range(repeats):
                    if r % 2:
                        t_base.append(_timed(base))
                        t_ours.append(_timed(ours))
                    else:
                        t_ours.append(_timed(ours))
                        t_base.append(_timed(base))
                per_repeat = [b / o for b, o in zip(t_base, t_ours)]
                rows.append({
                    "inputs": kind, "batch": B, "mode": mode, "dtype": str(dtype).replace("torch.", ""),
                    "ours_ms": 1e3 * statistics.median(t_ours), "torch_svd_ms": 1e3 * statistics.median(t_base),
                    "speedup": statistics.median(t_base) / statistics.median(t_ours),
                    "speedup_median_of_ratios": statistics.median(per_repeat),
                    "max_dev_ours": dev_ours, "max_dev_torch_svd": dev_base, "repeats": repeats,
                })
                logger.info("speed %s B=%d %s: %.2fx", kind, B, mode, rows[-1]["speedup"])
    return rows


def speed_table(rows: list[dict]) -> str:
    lines = ["Special Procrustes, ours (Newton polar, float64 inside) vs torch.linalg.svd + det fix; "
             "CPU, 1 thread, interleaved medians; deviation = max |R - R_float64_svd|.", "",
             "| inputs | B | mode | ours ms | torch.svd ms | speedup | median of ratios | max dev ours | "
             "max dev torch.svd |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['inputs']} | {r['batch']} | {r['mode']} | {r['ours_ms']:.2f} | "
                     f"{r['torch_svd_ms']:.2f} | {r['speedup']:.2f}x | {r['speedup_median_of_ratios']:.2f}x | "
                     f"{r['max_dev_ours']:.1e} | {r['max_dev_torch_svd']:.1e} |")
    return "\n".join(lines) + "\n"


def preset_dict(name: str) -> dict:
    return asdict(PRESETS[name])
