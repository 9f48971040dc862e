"""Training-step timing across rotation representations, measured interleaved in one process so that machine
noise hits every representation alike (``tools/bench_train.py``)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Dict, Mapping, Sequence

import torch

from hmr import losses
from hmr.config import Config, merge
from hmr.engine.builders import build_body_model, build_model, build_representation, keypoint_settings
from hmr.engine.forward import OrthoSwitches, decode_outputs
from hmr.geometry.camera import bbox_info
from hmr.rotations import axis_angle_to_matrix


def random_batch(body_model, batch_size: int, crop_hw: Sequence[int], keypoint_set: str, seed: int = 0):
    """A labelled random batch (image noise, random poses) with every field the losses read."""
    g = torch.Generator().manual_seed(seed)
    j = body_model.num_joints
    pose = axis_angle_to_matrix(0.3 * torch.randn(batch_size, j, 3, generator=g))
    betas = torch.randn(batch_size, body_model.num_betas, generator=g)
    with torch.no_grad():
        out = body_model(full_pose=pose, betas=betas)
        kp3d = body_model.keypoints(out.vertices, out.joints, keypoint_set)
    center = torch.full((batch_size, 2), 128.0)
    scale = torch.full((batch_size,), 1.0)
    focal = torch.full((batch_size,), 362.0)
    img_size = torch.full((batch_size, 2), 256.0)
    return {
        "img": torch.randn(batch_size, 3, *crop_hw, generator=g), "center": center, "scale": scale,
        "focal": focal, "img_size": img_size, "bbox_info": bbox_info(center, scale, focal, img_size),
        "pose": pose, "betas": betas, "has_pose": torch.ones(batch_size), "has_betas": torch.ones(batch_size),
        "joints_3d": torch.cat([kp3d, torch.ones_like(kp3d[..., :1])], dim=-1),
        "keypoints_2d": torch.cat([128 + 50 * kp3d[..., :2], torch.ones_like(kp3d[..., :1])], dim=-1),
    }


def core_loss(pred, batch, root_joints) -> torch.Tensor:
    """Rotation + 3D-joint + 2D-keypoint loss, unweighted: the training step the benchmarks and checks time."""
    return (losses.rotation_loss(pred["rotmats_loss"], batch["pose"], batch["has_pose"])
            + losses.joints3d_loss(pred["keypoints_3d"], batch["joints_3d"], root_joints)
            + losses.keypoint2d_loss(pred["keypoints_2d"], batch["keypoints_2d"], batch["center"],
                                     batch["scale"] * 200))


DECODE_PATHS = {"mesh": "keypoints read from the skinned mesh",
                "keypoints": "keypoints straight from pose and shape (KeypointModel, the trainer's path without a "
                             "vertex loss)"}


def time_train_steps(cfg: Mapping[str, Any], representations: Sequence[str], repeats: int = 10,
                     warmup: int = 2, decode_paths: Sequence[str] = ("mesh",)) -> Dict[str, Dict[str, float]]:
    """Median seconds per full training step (forward, losses, backward, Adam) for each representation and
    decode path (:data:`DECODE_PATHS`); keys ``<representation>`` for the mesh path, else
    ``<representation>/<path>``."""
    from hmr.fitting.keypoint_model import KeypointModel
    setups = {}
    for name in representations:
        run_cfg = Config(merge(cfg, {"representation": {"name": name, "options": {}}}))
        body_model = build_body_model(run_cfg)
        rep = build_representation(run_cfg)
        kp_set, root = keypoint_settings(run_cfg, body_model)
        batch = random_batch(body_model, int(run_cfg["train"]["batch_size"]), run_cfg["model"]["input_size"], kp_set)
        for path in decode_paths:
            if path not in DECODE_PATHS:
                raise ValueError(f"unknown decode path {path!r}; expected one of {sorted(DECODE_PATHS)}")
            torch.manual_seed(0)
            model = build_model(run_cfg, body_model, rep)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            keypoint_model = KeypointModel(body_model, kp_set) if path == "keypoints" else None
            label = name if path == "mesh" else f"{name}/{path}"
            setups[label] = (body_model, rep, model, kp_set, root, batch, opt,
                             OrthoSwitches.from_config(run_cfg["representation"]), keypoint_model)
    times: Dict[str, list] = {n: [] for n in setups}
    for i in range(warmup + repeats):
        for name, (body_model, rep, model, kp_set, root, batch, opt, switches, keypoint_model) in setups.items():
            start = time.perf_counter()
            out = model(batch["img"], batch["bbox_info"])
            pred = decode_outputs(out, rep, body_model, batch, switches, kp_set, "train",
                                  keypoint_model=keypoint_model)
            loss = core_loss(pred, batch, root)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {n: {"median_s": statistics.median(t), "min_s": min(t)} for n, t in times.items()}
