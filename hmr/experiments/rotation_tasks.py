"""Rotation-only experiments of issue 8: the gradient analysis, Zhou 2019 rotation recovery (from the rotation
library's benchmark) and a point-cloud pose task on points sampled from the open body and hand meshes
(standing in for Zhou 2019's ShapeNet airplanes)."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from hmr.experiments.lifting import LiftingConfig, build_representation, train_lifting
from hmr.rotations.ambiguity import random_rotations
from hmr.rotations.benchmark import error_summary
from hmr.rotations.conversions import geodesic_distance

log = logging.getLogger(__name__)

RECOVERY_REPS = ["prom", "6d", "svd9d", "6d_free", "quaternion", "axis_angle", "euler"]
POINT_REPS = ["prom", "6d", "svd9d", "quaternion", "axis_angle"]
PRESETS = {
    "tiny": {"grad_n": 50, "lift_steps": 6, "recovery": (20, 32, 1e-3, 1e-4, 200), "points": (10, 8, 64, 200),
             "reps": ["prom", "6d"], "lift": {"train_pool": 64, "test_size": 16, "val_size": 16, "batch_size": 16,
                                              "hidden": 32, "eval_every": 3}},
    "cpu": {"grad_n": 2000, "lift_steps": 800, "recovery": (3000, 256, 1e-3, 1e-5, 20000),
            "points": (1500, 32, 256, 2000), "reps": None,
            "lift": {"train_pool": 20000, "test_size": 500, "eval_every": 25}},
    "full": {"grad_n": 20000, "lift_steps": 5000, "recovery": (100000, 64, 1e-4, 1e-6, 100000),
             "points": (30000, 64, 1024, 20000), "reps": None,
             "lift": {"train_pool": 100000, "test_size": 2000, "eval_every": 100}},
}


def gradients(preset: str, work_dir: Path) -> Dict[str, Any]:
    """Jacobian spectra and closed-form checks, Procrustes condition distributions, the gradient-ambiguity
    scatter (hmr.rotations.analysis) and the condition number of PRoM's raw predictions over training on the
    lifting test bed (plain vs residual head, with and without a rotation loss)."""
    import hmr.body
    from hmr.rotations.analysis import gradient_report
    p = PRESETS[preset]
    report = gradient_report(work_dir, n=p["grad_n"], seed=0)
    report["figures"] = [str(work_dir / f) for f in report["figures"]]
    body_model = hmr.body.load("open-smpl")
    over_training = []
    for head in ("plain", "residual"):
        for rot in (1.0, 0.0):
            cfg = LiftingConfig(representation="prom", head=head, rotation_loss=rot, steps=p["lift_steps"],
                                refit=False, **p["lift"])
            result = train_lifting(cfg, body_model)
            over_training.append({"head": head, "rotation_loss": rot, "history": result["history"]})
    report["condition_over_training"] = over_training
    return report


def rotation_recovery(preset: str, work_dir: Path) -> Dict[str, Any]:
    """Zhou 2019 / PRoM Table 2a auto-encoder, through hmr.rotations.benchmark.rotation_recovery."""
    from hmr.rotations.benchmark import RecoveryPreset
    from hmr.rotations.benchmark import rotation_recovery as recover
    its, batch, lr, lr_final, test = PRESETS[preset]["recovery"]
    setting = RecoveryPreset(iterations=its, batch_size=batch, lr=lr, lr_final=lr_final, lr_step=None,
                             test_size=test)
    reps = PRESETS[preset]["reps"] or RECOVERY_REPS
    rows = [recover(name, setting, seed=0) for name in reps]
    return {"settings": {"iterations": its, "batch_size": batch, "lr": lr, "lr_final": lr_final,
                         "schedule": "cosine", "test_size": test}, "rows": rows}


class PointNetLite(nn.Module):
    """Shared per-point MLP, max-pool, MLP head (Qi et al. 2017, reduced)."""

    def __init__(self, out_dim: int, width: int = 128) -> None:
        super().__init__()
        self.point = nn.Sequential(nn.Linear(3, 64), nn.LeakyReLU(), nn.Linear(64, width), nn.LeakyReLU())
        self.head = nn.Sequential(nn.Linear(width, width), nn.LeakyReLU(), nn.Linear(width, out_dim))

    def forward(self, points: Tensor) -> Tensor:
        return self.head(self.point(points).amax(dim=1))


def template_points(name: str) -> Tensor:
    """Rest-pose vertices of an open model, centred and scaled to unit RMS radius (V, 3)."""
    import hmr.body
    with torch.no_grad():
        v = hmr.body.load(name)().vertices[0].double()
    v = v - v.mean(0)
    return (v / v.pow(2).sum(-1).mean().sqrt()).float()


def _batch(template: Tensor, size: int, num_points: int, generator: torch.Generator):
    R = random_rotations(size, generator, torch.float32)
    idx = torch.randint(0, len(template), (size, num_points), generator=generator)
    canonical = template[idx]                                   # (B, N, 3)
    return canonical, canonical @ R.transpose(1, 2), R


def point_cloud_pose(name: str, template: Tensor, iterations: int, batch: int, num_points: int, test: int,
                     seed: int = 0) -> Dict[str, Any]:
    """Train PointNetLite to predict R from a rotated cloud; loss mean ||M p − R p||² on the points with the
    representation's training matrix M (Zhou 2019's point loss); geodesic test error (deg) of the inference
    rotation."""
    rep = build_representation(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = PointNetLite(rep.dim)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for it in range(iterations):
        for group in optim.param_groups:
            group["lr"] = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * it / iterations))
        canonical, rotated, R = _batch(template, batch, num_points, gen)
        out = model(rotated)
        M = rep.train_matrix(out)
        loss = ((canonical @ M.transpose(1, 2) - rotated) ** 2).sum(-1).mean() + rep.extra_loss(out, R)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
    seconds = time.perf_counter() - t0
    test_gen = torch.Generator().manual_seed(10_000 + seed)
    errors = []
    with torch.no_grad():
        for start in range(0, test, 500):
            _, rotated, R = _batch(template, min(500, test - start), num_points, test_gen)
            pred = rep.inference_rotation(model(rotated))
            errors.append(torch.rad2deg(geodesic_distance(pred.double(), R.double())))
    err = torch.cat(errors)
    return {"representation": name, **error_summary(err), "train_seconds": round(seconds, 1)}


def point_cloud(preset: str, work_dir: Path) -> Dict[str, Any]:
    """The point-cloud pose task on the open body and hand meshes."""
    iterations, batch, num_points, test = PRESETS[preset]["points"]
    reps = PRESETS[preset]["reps"] or POINT_REPS
    rows: List[Dict[str, Any]] = []
    for obj in ("open-smpl", "open-mano-right"):
        template = template_points(obj)
        for name in reps:
            rows.append({"object": obj, **point_cloud_pose(name, template, iterations, batch, num_points, test)})
    return {"settings": {"iterations": iterations, "batch_size": batch, "points": num_points, "test_size": test,
                        "lr": "1e-3 cosine to 1e-5", "loss": "mean ||M p - R p||^2 (training matrix M)",
                        "input": "rotated cloud only (the canonical cloud is the fixed rest-pose template)"},
            "rows": rows}
