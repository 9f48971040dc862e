"""The image-free test bed of issue 9: keypoint lifting through forward kinematics.

Input: the posed kinematic joints of the open body (24) or hand (16) model (root-relative, metres; optional
Gaussian noise). Output: per-joint rotation parameters + betas, pushed through the representation's training
map and forward kinematics (joints only, no skinning: :func:`hmr.engine.gap.kinematic_joints`). Poses come from
the synthetic pose priors (:mod:`hmr.data.synthetic.pose_prior`; body or hand by the model's kind), global
orientations are a uniform yaw with up to ±20° tilt, betas ~ N(0, 1) clipped to ±3.

On the body five rotations (feet, head, hands: the leaves 10, 11, 15, 22, 23) move no kinematic joint, on the
hand the five fingertip rotations move none, and twists about a bone show only through the children, so the task has the real ambiguity that makes an MSE rotation loss prefer
the conditional *mean* matrix (singular values < 1) — issue 9's first mechanism — and, without a rotation
loss, leaves raw matrices free to scale and reflect — its second.

Heads: ``plain`` (a linear layer with PyTorch's default initialisation: the raw matrices start as small random
matrices, about half with det < 0) or ``residual`` (CLIFF/HMR: mean-pose parameters plus a residual from a
linear layer initialised at 0.01 scale, so matrices start near the identity rotation).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from hmr import losses, metrics
from hmr.engine.forward import Annealing, blended_matrices
from hmr.engine.gap import gap_report, kinematic_joints, point_gap
from hmr.engine.refit import refit_shape
from hmr.rotations import axis_angle_to_matrix

log = logging.getLogger(__name__)
HEADS = ("plain", "residual")


@dataclass
class LiftingConfig:
    """One lifting run. Loss weights follow configs/defaults.yaml (rotation 1, joints3d 5, betas prior 0.001)."""

    representation: str = "prom"
    rep_options: Dict[str, Any] = field(default_factory=dict)
    head: str = "residual"
    rotation_loss: float = 1.0
    joints_loss: float = 5.0
    betas_prior: float = 0.001
    orthogonality: float = 0.0
    anneal: Dict[str, Any] = field(default_factory=dict)
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    hidden: int = 256
    input_noise_mm: float = 0.0
    train_pool: int = 20000
    test_size: int = 500
    eval_every: int = 100
    val_size: int = 256
    seed: int = 0
    refit: bool = True

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"lifting: head must be one of {HEADS}, got {self.head!r}")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("lifting: steps and batch_size must be >= 1 and lr > 0")


def build_representation(name: str, options: Optional[Dict[str, Any]] = None):
    """A registry representation, or the scale-free PRoM (not registered yet: hmr/rotations/scale_free.py)."""
    import hmr.rotations
    if name == "prom_scale_free" and name not in hmr.rotations.names():
        from hmr.rotations.scale_free import ScaleFreePRoM
        return ScaleFreePRoM(**(options or {}))
    return hmr.rotations.get(name, **(options or {}))


class PoseSource:
    """Ground-truth (rotations, betas, joints) batches from the pose prior; a fixed pool, deterministic."""

    def __init__(self, body_model, size: int, seed: int, max_tilt_deg: float = 20.0) -> None:
        from hmr.data.synthetic.pose_prior import BodyPosePrior, HandPosePrior
        with torch.no_grad():
            rest_out = body_model()
        rest = rest_out.joints[0].double().numpy()
        if body_model.kind == "body":
            prior = BodyPosePrior(rest)
        elif body_model.kind == "hand" and "freihand21" in body_model.keypoint_sets():
            tips = body_model.keypoints(rest_out.vertices, rest_out.joints, "freihand21")[0, [4, 8, 12, 16, 20]]
            prior = HandPosePrior(rest, tips.double().numpy(), right=not body_model.name.endswith("left"))
        else:
            raise ValueError(f"the lifting test bed needs a body model or a hand model with fingertip keypoints, "
                             f"got {body_model.name} ({body_model.kind})")
        rng = np.random.default_rng(seed)
        body_pose, _ = prior.sample(rng, size)
        yaw = rng.uniform(-math.pi, math.pi, size)
        tilt = np.radians(max_tilt_deg) * rng.uniform(-1, 1, (size, 2))
        aa_yaw = np.stack([np.zeros(size), yaw, np.zeros(size)], 1)
        aa_tilt = np.stack([tilt[:, 0], np.zeros(size), tilt[:, 1]], 1)
        orient = axis_angle_to_matrix(torch.from_numpy(aa_tilt)) @ axis_angle_to_matrix(torch.from_numpy(aa_yaw))
        self.rotations = torch.cat([orient[:, None], torch.from_numpy(body_pose)], 1).float()
        self.betas = torch.from_numpy(np.clip(rng.normal(0, 1, (size, body_model.num_betas)), -3, 3)).float()
        with torch.no_grad():
            joints = kinematic_joints(body_model, self.rotations, self.betas)
        self.joints = joints - joints[:, :1]

    def __len__(self) -> int:
        return len(self.rotations)


class LiftingNet(nn.Module):
    """MLP: J·3 joint coordinates -> J·dim rotation parameters + L betas (plain or mean-pose residual head)."""

    def __init__(self, num_joints: int, rep_dim: int, num_betas: int, hidden: int, head: str,
                 mean_params: Optional[Tensor]) -> None:
        super().__init__()
        self.num_joints, self.rep_dim, self.num_betas = num_joints, rep_dim, num_betas
        self.body = nn.Sequential(nn.Linear(num_joints * 3, hidden), nn.LeakyReLU(),
                                  nn.Linear(hidden, hidden), nn.LeakyReLU())
        self.out = nn.Linear(hidden, num_joints * rep_dim + num_betas)
        if head == "residual":
            if mean_params is None:
                raise ValueError("a residual head needs the mean-pose parameters (representation.encode)")
            nn.init.xavier_uniform_(self.out.weight, gain=0.01)
            nn.init.zeros_(self.out.bias)
            self.register_buffer("mean", torch.cat([mean_params.reshape(-1), torch.zeros(num_betas)]))
        else:
            self.register_buffer("mean", torch.zeros(num_joints * rep_dim + num_betas))

    def forward(self, joints: Tensor) -> Dict[str, Tensor]:
        y = self.out(self.body(joints.reshape(joints.shape[0], -1))) + self.mean
        n = self.num_joints * self.rep_dim
        return {"pose_params": y[:, :n].reshape(-1, self.num_joints, self.rep_dim), "betas": y[:, n:]}


def _noisy(joints: Tensor, noise_mm: float, generator: torch.Generator) -> Tensor:
    if noise_mm <= 0:
        return joints
    return joints + 1e-3 * noise_mm * torch.randn(joints.shape, generator=generator)


@torch.no_grad()
def quick_eval(model, rep, body_model, data: PoseSource, rows: slice) -> Dict[str, float]:
    """Inference-skeleton MPJPE (mm, root-aligned), the training/inference joint gap and matrix scalars."""
    model.eval()
    out = model(data.joints[rows])
    train_m = rep.train_matrix(out["pose_params"])
    j_inf = kinematic_joints(body_model, rep.inference_rotation(out["pose_params"]), out["betas"])
    j_train = kinematic_joints(body_model, train_m, out["betas"])
    gt = data.joints[rows]
    model.train()
    s = torch.linalg.svdvals(train_m.double())
    det = torch.linalg.det(train_m.double())
    s3 = torch.where(det < 0, -s[..., 2], s[..., 2])
    cond = torch.where(s[..., 1] + s3 > 0, (s[..., 0] + s[..., 1]) / (s[..., 1] + s3).clamp(min=1e-300),
                       torch.full_like(s3, float("inf")))
    return {"mpjpe": 1000.0 * float(point_gap(j_inf - j_inf[:, :1], gt).mean()),
            "train_mpjpe": 1000.0 * float(point_gap(j_train - j_train[:, :1], gt).mean()),
            "gap_joints": 1000.0 * float(point_gap(j_train, j_inf).mean()),
            "sv_min_mean": float(s[..., 2].mean()), "det_neg_frac": float((det < 0).double().mean()),
            "sv_max_mean": float(s[..., 0].mean()), "proj_cond_median": float(cond.median()),
            "proj_cond_p95": float(cond.flatten().quantile(0.95))}


@torch.no_grad()
def final_eval(model, rep, body_model, data: PoseSource, do_refit: bool, fk_weight: float = 0.0) -> Dict[str, Any]:
    """MPJPE / PA-MPJPE (24 kinematic joints, pelvis-aligned), PVE (pelvis-aligned mesh), the gap report and
    the consistency refit, in mm, on the whole test pool. The training-time mesh is the one FK saw at the last
    step (``fk_weight``: the projection-annealing blend weight then; 0 for plain training)."""
    model.eval()
    out = model(data.joints)
    params, betas = out["pose_params"], out["betas"]
    train_m = blended_matrices(rep, params, "train", fk_weight)
    inf_m = rep.inference_rotation(params)
    gt_body = body_model(full_pose=data.rotations, betas=data.betas)
    inf_body = body_model(full_pose=inf_m, betas=betas)
    train_body = body_model(full_pose=train_m, betas=betas)
    center = lambda v, j: (v - j[:, :1]).numpy()  # noqa: E731  (pelvis-aligned)
    gt_j, gt_v = center(gt_body.joints, gt_body.joints), center(gt_body.vertices, gt_body.joints)
    inf_j, inf_v = center(inf_body.joints, inf_body.joints), center(inf_body.vertices, inf_body.joints)
    train_j, train_v = center(train_body.joints, train_body.joints), center(train_body.vertices, train_body.joints)
    result = {
        "mpjpe_mm": 1000.0 * float(metrics.mpjpe(inf_j, gt_j).mean()),
        "pa_mpjpe_mm": 1000.0 * float(metrics.pa_mpjpe(inf_j, gt_j).mean()),
        "pve_mm": 1000.0 * float(metrics.pve(inf_v, gt_v).mean()),
        "train_mpjpe_mm": 1000.0 * float(metrics.mpjpe(train_j, gt_j).mean()),
        "train_pve_mm": 1000.0 * float(metrics.pve(train_v, gt_v).mean()),
    }
    gap = gap_report(body_model.parents, train_m, train_body.joints, inf_body.joints, train_body.vertices,
                     inf_body.vertices, gt_joints=gt_body.joints)
    result.update(gap["metrics"])
    if do_refit:
        fit = refit_shape(body_model, inf_m, betas, train_body.joints)
        ref = body_model(full_pose=inf_m, betas=fit.betas)
        ref_v = ref.vertices + fit.transl[:, None]
        result.update({
            "refit_mpjpe_mm": 1000.0 * float(metrics.mpjpe(center(ref.joints, ref.joints), gt_j).mean()),
            "refit_pve_mm": 1000.0 * float(metrics.pve(center(ref.vertices, ref.joints), gt_v).mean()),
            "refit_gap_mpjpe_mm": 1000.0 * float(point_gap(fit.joints, train_body.joints).mean()),
            "refit_gap_pve_mm": 1000.0 * float(point_gap(ref_v, train_body.vertices).mean()),
            "refit_betas_drift": float(fit.betas_drift.mean()),
        })
    model.train()
    return {"metrics": result, "per_joint": gap["per_joint"], "per_depth": gap["per_depth"]}


def train_lifting(cfg: LiftingConfig, body_model, train_data: Optional[PoseSource] = None,
                  test_data: Optional[PoseSource] = None) -> Dict[str, Any]:
    """Train one lifting model; returns the config, the history (every ``eval_every`` steps) and final metrics.

    Pools are deterministic in their seeds (train: 1000 + seed, test: 99), so runs differ only by ``seed``.
    """
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rep = build_representation(cfg.representation, cfg.rep_options)
    train_data = train_data or PoseSource(body_model, cfg.train_pool, 1000 + cfg.seed)
    test_data = test_data or PoseSource(body_model, cfg.test_size, 99)
    J, L = body_model.num_joints, body_model.num_betas
    try:
        mean_params = rep.encode(torch.eye(3).expand(J, 3, 3).clone())
    except NotImplementedError:
        mean_params = None
    model = LiftingNet(J, rep.dim, L, cfg.hidden, cfg.head, mean_params)
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    annealing = Annealing.from_config(cfg.anneal)
    ones = torch.ones(cfg.batch_size)
    history: List[Dict[str, float]] = []
    val_rows = slice(0, min(cfg.val_size, len(test_data)))
    nonfinite, t0 = 0, time.perf_counter()
    for step in range(cfg.steps):
        if step % cfg.eval_every == 0:
            history.append({"step": step, **quick_eval(model, rep, body_model, test_data, val_rows)})
        idx = torch.randint(0, len(train_data), (cfg.batch_size,), generator=generator)
        gt_rot, gt_joints = train_data.rotations[idx], train_data.joints[idx]
        out = model(_noisy(gt_joints, cfg.input_noise_mm, generator))
        blend = annealing.blend(step, cfg.steps)
        params = out["pose_params"]
        fk_m = blended_matrices(rep, params, "train", blend.get("forward_kinematics", 0.0))
        joints = kinematic_joints(body_model, fk_m, out["betas"])
        target = torch.cat([gt_joints, ones[:, None, None].expand(-1, J, 1)], dim=-1)
        loss = cfg.joints_loss * losses.joints3d_loss(joints, target, (0,))
        loss = loss + cfg.betas_prior * losses.betas_prior(out["betas"])
        if cfg.rotation_loss:
            loss_m = blended_matrices(rep, params, "train", blend.get("rotation_loss", 0.0))
            loss = loss + cfg.rotation_loss * losses.rotation_loss(loss_m, gt_rot, ones)
            loss = loss + 0.1 * rep.extra_loss(params, gt_rot)
        if cfg.orthogonality:
            loss = loss + cfg.orthogonality * losses.orthogonality_penalty(rep.train_matrix(params))
        optim.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            nonfinite += 1
            continue
        loss.backward()
        optim.step()
    history.append({"step": cfg.steps, **quick_eval(model, rep, body_model, test_data, val_rows)})
    seconds = time.perf_counter() - t0
    final = final_eval(model, rep, body_model, test_data, cfg.refit,
                       annealing.blend(cfg.steps - 1, cfg.steps).get("forward_kinematics", 0.0))
    if annealing.kind != "none":  # the raw matrices' own gap, which annealing stops training at the end
        raw = final_eval(model, rep, body_model, test_data, False)["metrics"]
        final["metrics"].update({f"raw_{k}": raw[k] for k in ("inference_gap_pve_mm", "inference_gap_mpjpe_mm",
                                                               "train_sv_min_mean", "train_det_neg_frac")})
    log.info("%s/%s rot=%g seed=%d: MPJPE %.1f mm, gap PVE %.1f mm (%.0f s)", cfg.representation, cfg.head,
             cfg.rotation_loss, cfg.seed, final["metrics"]["mpjpe_mm"],
             final["metrics"]["inference_gap_pve_mm"], seconds)
    return {"config": asdict(cfg), "history": history, "final": final, "seconds": round(seconds, 1),
            "nonfinite_steps": nonfinite, "representation_repr": repr(rep)}
