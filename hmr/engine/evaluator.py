"""Evaluation: run the regressor over a dataset through the representation's inference mapping, build the
predicted and ground-truth point sets the protocol names, and score them.

``oracle=True`` feeds the ground-truth rotations, shape and (for meshes) camera through the same decode path:
it must score 0, which catches joint-order, frame and unit bugs in the pipeline itself.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from hmr import metrics
from hmr.body.joint_sets import LSP14_FROM_H36M17, LSP14_FROM_SPIN24
from hmr.engine.forward import OrthoSwitches, body_forward, decode_outputs, rotation_matrices
from hmr.protocols import Protocol, get_protocol

log = logging.getLogger(__name__)


def _batches(dataset, batch_size: int, num_workers: int, max_samples: Optional[int]):
    if max_samples is not None and max_samples < len(dataset):
        dataset = Subset(dataset, list(range(int(max_samples))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return loader, len(dataset)


@torch.no_grad()
def collect(model, representation, body_model, dataset, switches: OrthoSwitches, keypoint_set: str,
            batch_size: int = 32, num_workers: int = 0, max_samples: Optional[int] = None,
            oracle: bool = False, device: Optional[torch.device] = None) -> Dict[str, np.ndarray]:
    """Predictions (inference mapping) and ground truth for every sample, as NumPy arrays keyed by name."""
    device = device or next(body_model.buffers()).device
    if model is not None:
        model.eval()
    loader, total = _batches(dataset, batch_size, num_workers, max_samples)
    out: Dict[str, list] = {}
    eval_set = "lsp14" if body_model.kind == "body" else "freihand21"
    for batch in tqdm(loader, total=len(loader), desc="eval", leave=False):
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        if oracle:
            pred = _oracle_outputs(representation, body_model, batch, keypoint_set)
        else:
            raw = model(batch["img"], batch["bbox_info"])
            pred = decode_outputs(raw, representation, body_model, batch, switches, keypoint_set, "inference")
            pred["train_vertices"] = body_forward(
                body_model, rotation_matrices(representation, raw["pose_params"], "train"), raw["betas"],
                None, {})["vertices"]
        pred["eval_joints"] = body_model.keypoints(pred["vertices"], pred["joints"], eval_set)
        if body_model.kind == "body":
            pred["pelvis"] = body_model.keypoints(pred["vertices"], pred["joints"], "h36m17")[:, :1]
        fields = {
            "pred_vertices": pred["vertices"], "pred_eval_joints": pred["eval_joints"],
            "pred_keypoints_2d": pred["keypoints_2d"], "pred_rotmats": pred["rotmats"],
            "pred_betas": pred["betas"], "pred_transl": pred["transl"],
            "gt_pose": batch["pose"], "gt_betas": batch["betas"], "gt_joints_3d": batch["joints_3d"],
            "gt_keypoints_2d": batch["keypoints_2d"], "has_pose": batch["has_pose"],
            "has_betas": batch["has_betas"], "has_3d": batch["has_3d"], "gender": batch["gender"],
            "index": batch["index"], "valid": batch["valid"],
        }
        if "pelvis" in pred:
            fields["pred_pelvis"] = pred["pelvis"]
        if "train_vertices" in pred:
            fields["train_vertices"] = pred["train_vertices"]
        if "vertices" in batch:
            fields["gt_vertices"] = batch["vertices"]
            fields["has_vertices"] = batch["has_vertices"]
        for key, value in fields.items():
            out.setdefault(key, []).append(value.detach().float().cpu().numpy())
    result = {k: np.concatenate(v) for k, v in out.items()}
    log.info("evaluated %d samples", total)
    return result


def _oracle_outputs(representation, body_model, batch: Mapping[str, torch.Tensor], keypoint_set: str):
    """Ground truth pushed through the decode path: encode → inference mapping → body model."""
    from hmr.geometry.camera import full_to_crop_camera
    params = representation.encode(batch["pose"])
    if "transl" in batch:
        cam = full_to_crop_camera(batch["transl"], batch["center"], batch["scale"], batch["focal"],
                                  batch["img_size"])
    else:
        cam = torch.tensor([1.0, 0.0, 0.0], device=params.device).expand(params.shape[0], 3)
    raw = {"pose_params": params, "betas": batch["betas"], "cam": cam}
    return decode_outputs(raw, representation, body_model, batch, OrthoSwitches(), keypoint_set, "inference")


def score(protocol: Protocol, data: Mapping[str, np.ndarray], gt_body_model=None) -> Dict[str, Any]:
    """Metrics of the protocol (mm) and per-sample errors, from :func:`collect` output."""
    valid = data["valid"] > 0
    per_sample: Dict[str, np.ndarray] = {}
    if protocol.metric_family == "freihand":
        has_v = data.get("has_vertices", np.zeros(len(valid))) > 0
        use_vertices = bool(has_v[valid].all()) and valid.any()
        errors = metrics.freihand_errors(
            data["pred_eval_joints"][valid], data["gt_joints_3d"][valid][..., :3],
            data["pred_vertices"][valid] if use_vertices else None,
            data["gt_vertices"][valid] if use_vertices else None)
        summary = metrics.summarize_freihand(errors)
        summary["mpjpe_mm"] = 1000.0 * float(metrics.mpjpe(data["pred_eval_joints"][valid],
                                                           data["gt_joints_3d"][valid][..., :3], root=0).mean())
        per_sample = {k: v for k, v in errors.items() if v.ndim == 1}
    else:
        gt_joints, gt_vertices = ground_truth_body(protocol, data, gt_body_model)
        pred = data["pred_eval_joints"] - data["pred_pelvis"]
        gt = gt_joints
        keep = valid
        per_sample["mpjpe"] = metrics.mpjpe(pred[keep], gt[keep])
        per_sample["pa_mpjpe"] = metrics.pa_mpjpe(pred[keep], gt[keep])
        summary = {"mpjpe_mm": 1000.0 * float(per_sample["mpjpe"].mean()),
                   "pa_mpjpe_mm": 1000.0 * float(per_sample["pa_mpjpe"].mean())}
        if gt_vertices is not None:
            pred_v = data["pred_vertices"] - data["pred_pelvis"]
            per_sample["pve"] = metrics.pve(pred_v[keep], gt_vertices[keep])
            summary["pve_mm"] = 1000.0 * float(per_sample["pve"].mean())
    if "train_vertices" in data:
        gap = np.linalg.norm(data["train_vertices"][valid] - data["pred_vertices"][valid], axis=-1).mean(axis=-1)
        per_sample["inference_gap_pve"] = gap
        summary["inference_gap_pve_mm"] = 1000.0 * float(gap.mean())
    return {"metrics": summary, "per_sample": per_sample, "count": int(valid.sum()),
            "skipped": int((~valid).sum())}


def ground_truth_body(protocol: Protocol, data: Mapping[str, np.ndarray], gt_body_model):
    """Pelvis-centred GT LSP-14 joints (and vertices where the GT mesh is available) for body protocols."""
    if protocol.gt_from_mesh:
        if gt_body_model is None:
            raise ValueError(f"protocol {protocol.name} needs a ground-truth body model")
        device = next(gt_body_model.buffers()).device
        pose = torch.as_tensor(data["gt_pose"], device=device)
        betas = torch.as_tensor(data["gt_betas"], device=device)
        verts_all, joints_all = [], []
        with torch.no_grad():
            for start in range(0, len(pose), 256):
                models = gt_body_model if not isinstance(gt_body_model, Mapping) else None
                out = (models or gt_body_model["neutral"])(full_pose=pose[start:start + 256],
                                                          betas=betas[start:start + 256])
                h36m = (models or gt_body_model["neutral"]).keypoints(out.vertices, out.joints, "h36m17")
                pelvis = h36m[:, :1]
                joints_all.append((h36m[:, list(LSP14_FROM_H36M17)] - pelvis).cpu().numpy())
                verts_all.append((out.vertices - pelvis).cpu().numpy())
        return np.concatenate(joints_all), np.concatenate(verts_all)
    joints = data["gt_joints_3d"][:, list(LSP14_FROM_SPIN24), :3]
    pelvis = data["gt_joints_3d"][:, [2, 3], :3].mean(axis=1, keepdims=True)
    return joints - pelvis, None


def evaluate(model, representation, body_model, dataset, protocol: Protocol, switches: OrthoSwitches,
             keypoint_set: str, batch_size: int = 32, num_workers: int = 0, max_samples: Optional[int] = None,
             oracle: bool = False, gt_body_model=None) -> Dict[str, Any]:
    """Collect + score; returns ``metrics``, ``per_sample``, ``protocol``, counts and timing."""
    t0 = time.time()
    data = collect(model, representation, body_model, dataset, switches, keypoint_set, batch_size,
                   num_workers, max_samples, oracle)
    result = score(protocol, data, gt_body_model if gt_body_model is not None else body_model)
    result.update(protocol=protocol.to_dict(), seconds=round(time.time() - t0, 2), oracle=oracle)
    result["raw"] = data
    return result


def evaluate_config(cfg: Mapping[str, Any], model, body_model, representation,
                    max_samples: Optional[int] = None, oracle: bool = False) -> Dict[str, Any]:
    """Evaluate on ``cfg.eval.dataset``/``split`` (used by the trainer and tools/eval.py)."""
    from hmr.data import build_dataset
    from hmr.engine.builders import keypoint_settings
    ecfg = cfg["eval"]
    dataset = build_dataset(ecfg["dataset"], ecfg.get("split", "test"), cfg["data"])
    protocol = get_protocol(ecfg["dataset"], ecfg.get("split", "test"))
    keypoint_set, _ = keypoint_settings(cfg, body_model)
    was_training = model.training if model is not None else False
    result = evaluate(model, representation, body_model, dataset, protocol,
                      OrthoSwitches.from_config(cfg["representation"]), keypoint_set,
                      batch_size=int(ecfg.get("batch_size", 32)), num_workers=int(ecfg.get("num_workers", 0)),
                      max_samples=max_samples, oracle=oracle)
    if model is not None and was_training:
        model.train()
    return result
