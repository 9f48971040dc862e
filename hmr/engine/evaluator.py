"""Evaluation: run the regressor over a dataset through the representation's inference mapping, build the
predicted and ground-truth point sets the protocol names, and score them.

Prediction sources: ``"model"`` (the regressor), ``"oracle"`` (ground-truth rotations and shape fed through the
same decode path: must score 0, which catches joint-order, frame and unit bugs in the pipeline itself) and
``"mean-pose"`` (the training set's mean pose and shape for every sample: the baseline a model must beat).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from hmr.engine.forward import Annealing, OrthoSwitches, blended_matrices, body_forward, decode_outputs
from hmr.engine.gap import gap_report, kinematic_joints
from hmr.engine.keypoint_terms import landmark_errors
from hmr.engine.refit import refit_shape
from hmr.protocols import GT_LABELS, Protocol, get_protocol

log = logging.getLogger(__name__)
SOURCES = ("model", "oracle", "mean-pose")


def _batches(dataset, batch_size: int, num_workers: int, max_samples: Optional[int]):
    if max_samples is not None and max_samples < len(dataset):
        dataset = Subset(dataset, list(range(int(max_samples))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return loader, len(dataset)


class GroundTruthModels:
    """GT body models by name, loaded once (gendered SMPL for 3DPW, with the protocol's fallback when the
    gendered files are missing — the protocol then records the model actually used)."""

    def __init__(self, protocol: Protocol, device: torch.device, default=None) -> None:
        self.protocol, self.device, self.cache = protocol, device, {}
        if default is not None:
            self.cache[protocol.gt_body_model_for(-1)] = default

    def get(self, gender: int):
        import hmr.body
        name = self.protocol.gt_body_model_for(gender)
        if name not in self.cache:
            try:
                self.cache[name] = hmr.body.load(name).to(self.device)
            except FileNotFoundError as exc:
                fallback = self.protocol.gt_body_model_fallback
                log.warning("GT body model %s unavailable (%s); using %s", name, exc, fallback)
                self.protocol = self.protocol.with_gt_body_model(fallback, f"{name} missing")
                self.cache[name] = self.cache.get(fallback) or hmr.body.load(fallback).to(self.device)
        return self.cache[name]


def _gt_mesh(gt_models: GroundTruthModels, batch: Mapping[str, torch.Tensor], input_set: str):
    """GT vertices and keypoints (input_set) per sample, grouped by gender."""
    pose, betas, gender = batch["pose"], batch["betas"], batch["gender"]
    verts = joints = None
    for g in gender.unique().tolist():
        rows = gender == g
        model = gt_models.get(int(g))
        out = model(full_pose=pose[rows], betas=betas[rows, :model.num_betas])
        kp = model.keypoints(out.vertices, out.joints, input_set)
        if verts is None:
            verts = out.vertices.new_zeros((len(pose),) + out.vertices.shape[1:])
            joints = kp.new_zeros((len(pose),) + kp.shape[1:])
        verts[rows], joints[rows] = out.vertices, kp
    return verts, joints


@torch.no_grad()
def collect(model, representation, body_model, dataset, protocol: Protocol, switches: OrthoSwitches,
            keypoint_set: str, batch_size: int = 32, num_workers: int = 0, max_samples: Optional[int] = None,
            source: str = "model", gt_models: Optional[GroundTruthModels] = None,
            fixed_pose: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
            refit: bool = False, train_blend: float = 0.0) -> Dict[str, np.ndarray]:
    """Predictions (through the inference mapping) and ground truth for every sample, as NumPy arrays.

    For the model source also the training-time matrices, skeleton and mesh of the same predictions (the
    train/inference gap, :mod:`hmr.engine.gap`), the GT kinematic joints (where ``has_pose``) and, with
    ``refit``, the inference mesh after the consistency refit of betas + translation (:mod:`hmr.engine.refit`).
    The training-time matrices are what forward kinematics saw at the end of training: the FK switch's mapping,
    blended by ``train_blend`` (projection annealing's final weight) towards the inference rotation.
    """
    device = next(body_model.buffers()).device
    if model is not None:
        model.eval()
    gt_models = gt_models or GroundTruthModels(protocol, device)
    loader, total = _batches(dataset, batch_size, num_workers, max_samples)
    out: Dict[str, list] = {}
    for batch in tqdm(loader, total=len(loader), desc="eval", leave=False):
        batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        fields = {}
        if source in ("oracle", "mean-pose"):
            pred = _fixed_outputs(representation, body_model, batch, keypoint_set,
                                  None if source == "oracle" else fixed_pose)
        else:
            raw = model(batch["img"], batch["bbox_info"])
            pred = decode_outputs(raw, representation, body_model, batch, switches, keypoint_set, "inference")
            train_rotmats = blended_matrices(representation, raw["pose_params"], switches.forward_kinematics,
                                             train_blend)
            if "landmarks_2d" in raw:  # how well a landmark network finds the labelled keypoints
                fields["landmark_error"] = landmark_errors(raw["landmarks_2d"], batch, keypoint_set)
            train_body = body_forward(body_model, train_rotmats, raw["betas"], None, {})
            fields.update(train_vertices=train_body["vertices"], train_rotmats=train_rotmats,
                          train_kinematic=train_body["joints"], pred_kinematic=pred["joints"],
                          gt_kinematic=kinematic_joints(body_model, batch["pose"],
                                                        batch["betas"][:, :body_model.num_betas]))
            if refit:
                fit = refit_shape(body_model, pred["rotmats"], raw["betas"], train_body["joints"])
                fitted = body_forward(body_model, pred["rotmats"], fit.betas, fit.transl, {})
                fields.update(refit_vertices=fitted["vertices_cam"], refit_kinematic=fit.joints,
                              refit_joints=body_model.keypoints(fitted["vertices_cam"],
                                                                fitted["joints"] + fit.transl[:, None],
                                                                protocol.input_set),
                              refit_betas_drift=fit.betas_drift)
        fields.update({
            "pred_vertices": pred["vertices"], "pred_rotmats": pred["rotmats"], "pred_betas": pred["betas"],
            "pred_transl": pred["transl"], "pred_keypoints_2d": pred["keypoints_2d"],
            "pred_joints": body_model.keypoints(pred["vertices"], pred["joints"], protocol.input_set),
            "gt_keypoints_2d": batch["keypoints_2d"], "gender": batch["gender"], "index": batch["index"],
            "focal": batch["focal"], "img_size": batch["img_size"],
            "valid": batch["valid"],
            **{flag: batch[flag] for flag, _ in GT_LABELS.values() if flag in batch},
        })
        if protocol.gt_from_mesh:
            fields["gt_vertices"], fields["gt_joints"] = _gt_mesh(gt_models, batch, protocol.input_set)
        else:
            fields["gt_joints"] = batch["joints_3d"][..., :3]
            if "vertices" in batch:
                fields["gt_vertices"] = batch["vertices"]
        for key, value in fields.items():
            out.setdefault(key, []).append(value.detach().float().cpu().numpy())
    if not out:
        raise ValueError(f"{protocol.name}: the dataset has no samples to evaluate")
    result = {k: np.concatenate(v) for k, v in out.items()}
    result["parents"] = np.asarray(body_model.parents, dtype=np.int64)
    log.info("evaluated %d samples", total)
    return result


def _fixed_outputs(representation, body_model, batch: Mapping[str, torch.Tensor], keypoint_set: str,
                   fixed_pose: Optional[Tuple[torch.Tensor, torch.Tensor]]):
    """Ground truth (``fixed_pose`` None) or one fixed (rotations, betas) for every sample, pushed through the
    decode path: encode → inference mapping → body model. The camera is a placeholder: every protocol
    centres or aligns before measuring."""
    if fixed_pose is None:
        rotations, betas = batch["pose"], batch["betas"][:, :body_model.num_betas]
    else:
        n = batch["pose"].shape[0]
        rotations = fixed_pose[0].to(batch["pose"]).expand(n, -1, -1, -1)
        betas = fixed_pose[1].to(batch["pose"]).expand(n, -1)
    params = representation.encode(rotations)
    cam = torch.tensor([1.0, 0.0, 0.0], device=params.device).expand(params.shape[0], 3)
    raw = {"pose_params": params, "betas": betas, "cam": cam}
    return decode_outputs(raw, representation, body_model, batch, OrthoSwitches(), keypoint_set, "inference")


def mean_pose(dataset, max_items: int = 5000) -> Tuple[torch.Tensor, torch.Tensor]:
    """The mean-pose baseline from a dataset's annotations (no images read): per joint the chordal mean of the
    GT rotations projected to SO(3) (special Procrustes) over the samples with ``has_pose``, and the mean shape
    over those with ``has_betas``, among the first ``max_items`` samples."""
    from hmr.rotations import special_procrustes
    count = min(len(dataset), max_items)
    if count == 0:
        raise ValueError("cannot compute a mean pose from an empty dataset")
    poses, betas = [], []
    for i in range(count):
        ann = dataset.annotation(i)
        if ann.has_pose:
            poses.append(np.asarray(ann.pose, dtype=np.float64))
        if ann.has_betas:
            betas.append(np.asarray(ann.betas, dtype=np.float64))
    if not poses:
        raise ValueError("the dataset has no pose annotations to average")
    if not betas:
        log.warning("no shape (betas) annotations in the first %d samples: the mean-pose baseline uses the "
                    "template shape (zero betas)", count)
        betas = [np.zeros_like(np.asarray(dataset.annotation(0).betas, dtype=np.float64))]
    mean_rot = special_procrustes(torch.as_tensor(np.mean(poses, axis=0)))
    return mean_rot.float(), torch.as_tensor(np.mean(betas, axis=0)).float()


def labels(data: Mapping[str, np.ndarray], rows: np.ndarray) -> Dict[str, np.ndarray]:
    """GT name (``hmr.protocols.GT_LABELS``) -> (n,) bool of the ``rows`` labelled for it (absent: none are)."""
    return {name: data[flag][rows] > 0 for name, (flag, _) in GT_LABELS.items() if flag in data}


def score(protocol: Protocol, data: Mapping[str, np.ndarray], source: str = "model") -> Dict[str, Any]:
    """The protocol's metrics (means; mm) from :func:`collect` output, each on the readable samples that have
    the ground truth it needs; ``metric_samples`` says how many, ``refused`` which metrics no sample supports.
    Raises ``ValueError`` when no metric can be scored."""
    valid = data["valid"] > 0
    if not valid.any():
        raise ValueError(f"{protocol.name}: no readable samples to score")
    pick = lambda key: data[key][valid] if key in data else None  # noqa: E731
    labelled = labels(data, valid)
    also = ("pose", "betas") if source == "oracle" else ()   # the oracle predicts from GT pose and shape
    scored = protocol.score(pick("pred_joints"), pick("gt_joints"), pick("pred_vertices"), pick("gt_vertices"),
                            labelled, also_needs=also)
    if not scored.metrics:
        raise ValueError(f"{protocol.name}: no metric can be scored: " + "; ".join(
            f"{k}: {reason}" for k, reason in scored.refused.items()))
    summary, counts, per_sample = dict(scored.metrics), dict(scored.counts), dict(scored.per_sample)
    readable = int(valid.sum())
    gap = None
    if "train_vertices" in data:
        # PRoM's train/inference gap: the mesh the losses saw vs the exported (projected) mesh (no GT needed).
        pve_gap = np.linalg.norm(pick("train_vertices") - pick("pred_vertices"), axis=-1).mean(axis=-1)
        per_sample["inference_gap_pve"] = pve_gap
        per_sample["inference_gap_mpjpe"] = np.linalg.norm(
            pick("train_kinematic") - pick("pred_kinematic"), axis=-1).mean(axis=-1)
        summary["inference_gap_pve_mm"] = 1000.0 * float(pve_gap.mean())
        tensor = lambda key: torch.from_numpy(pick(key))  # noqa: E731
        gt_rows = labelled.get("pose", np.zeros(readable, bool)) & labelled.get("betas", np.zeros(readable, bool))
        gap = gap_report(tuple(int(p) for p in data["parents"]), tensor("train_rotmats"), tensor("train_kinematic"),
                         tensor("pred_kinematic"), gt_joints=tensor("gt_kinematic"),
                         gt_mask=torch.from_numpy(gt_rows))
        summary.update({k: v for k, v in gap["metrics"].items() if k not in summary})
        for key in summary:
            if key not in counts:
                counts[key] = int(gt_rows.sum()) if key.endswith("_bone_error_mm") else readable
    if "landmark_error" in data and np.isfinite(pick("landmark_error")).any():
        errors = pick("landmark_error")[np.isfinite(pick("landmark_error"))]
        summary["landmark_error_median"] = float(np.median(errors))   # fraction of the box side
        summary["landmark_miss_share"] = float((errors > 0.1).mean())  # samples off by more than 10 %
        counts["landmark_error_median"] = counts["landmark_miss_share"] = len(errors)
    if "refit_joints" in data:
        refit = protocol.score(pick("refit_joints"), pick("gt_joints"), pick("refit_vertices"), pick("gt_vertices"),
                               labelled)
        summary.update({f"refit_{k}": v for k, v in refit.metrics.items()})
        counts.update({f"refit_{k}": v for k, v in refit.counts.items()})
        summary["refit_gap_mpjpe_mm"] = 1000.0 * float(np.linalg.norm(
            pick("refit_kinematic") - pick("train_kinematic"), axis=-1).mean())
        summary["refit_betas_drift"] = float(pick("refit_betas_drift").mean())
        counts["refit_gap_mpjpe_mm"] = counts["refit_betas_drift"] = readable
    return {"metrics": summary, "metric_samples": {k: counts[k] for k in summary}, "refused": scored.refused,
            "per_sample": per_sample, "count": readable, "unreadable": int((~valid).sum()), "gap": gap}


def evaluate(model, representation, body_model, dataset, protocol: Protocol, switches: OrthoSwitches,
             keypoint_set: str, batch_size: int = 32, num_workers: int = 0, max_samples: Optional[int] = None,
             source: str = "model", fixed_pose=None, refit: bool = False,
             train_blend: float = 0.0) -> Dict[str, Any]:
    """Collect + score; returns ``metrics``, ``per_sample``, ``protocol`` (as used), counts, timing, ``raw``
    and ``gap`` (per-joint / per-depth train/inference gap statistics; None for the oracle / mean-pose)."""
    if source not in SOURCES:
        raise ValueError(f"prediction source must be one of {SOURCES}, got {source!r}")
    if source == "model" and model is None:
        raise ValueError("a trained model is required (or use the oracle / mean-pose sources)")
    if source == "mean-pose" and fixed_pose is None:
        raise ValueError("the mean-pose source needs fixed_pose = (rotations, betas); see mean_pose()")
    t0 = time.time()
    device = next(body_model.buffers()).device
    default_gt = body_model if protocol.gt_body_model_for(-1) == getattr(body_model, "name", None) else None
    gt_models = GroundTruthModels(protocol, device, default=default_gt)
    data = collect(model, representation, body_model, dataset, protocol, switches, keypoint_set, batch_size,
                   num_workers, max_samples, source, gt_models, fixed_pose, refit, train_blend)
    result = score(gt_models.protocol, data, source)
    result.update(protocol=gt_models.protocol.to_dict(), seconds=round(time.time() - t0, 2), source=source,
                  representation=representation.name, inference_mapping=switches.inference)
    result["raw"] = data
    return result


def final_fk_blend(cfg: Mapping[str, Any]) -> float:
    """Projection annealing's forward-kinematics weight at the last training step (0 without annealing)."""
    annealing = Annealing.from_config((cfg.get("representation") or {}).get("anneal"))
    steps = int((cfg.get("train") or {}).get("steps", 1))
    return annealing.blend(steps - 1, steps).get("forward_kinematics", 0.0)


def evaluate_config(cfg: Mapping[str, Any], model, body_model, representation, dataset_name: Optional[str] = None,
                    split: Optional[str] = None, max_samples: Optional[int] = None, source: str = "model",
                    batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                    refit: bool = False, dataset=None) -> Dict[str, Any]:
    """Evaluate on a registry dataset (default ``cfg.eval.dataset`` / ``split``) with its protocol. ``dataset``:
    that dataset's items already loaded (e.g. as cached encoder features; the model's backbone then reads
    features for the duration of the call)."""
    from hmr.data import build_dataset
    from hmr.engine.builders import keypoint_settings
    ecfg = cfg.get("eval") or {}
    dataset_name = dataset_name or ecfg.get("dataset")
    split = split or ecfg.get("split", "test")
    if not dataset_name:
        raise ValueError("no evaluation dataset: give one (--dataset) or set eval.dataset in the config")
    features = dataset is not None
    if dataset is None:
        dataset = build_dataset(dataset_name, split, cfg.get("data"), augment=False)
    protocol = get_protocol(dataset_name, split)
    fixed_pose = None
    if source == "mean-pose":
        train_name = next(iter(cfg["data"]["train"])) if isinstance(cfg["data"]["train"], Mapping) \
            else list(cfg["data"]["train"])[0]
        fixed_pose = mean_pose(build_dataset(train_name, "train", cfg.get("data"), augment=False))
    keypoint_set, _ = keypoint_settings(cfg, body_model)
    was_training = model.training if model is not None else False
    backbone = getattr(model, "backbone", None)
    was_features = getattr(backbone, "features_input", False)
    if backbone is not None:
        backbone.features_input = features
    try:
        result = evaluate(model, representation, body_model, dataset, protocol,
                          OrthoSwitches.from_config(cfg["representation"]), keypoint_set,
                          batch_size=int(batch_size or ecfg.get("batch_size", 32)),
                          num_workers=0 if features else int(num_workers if num_workers is not None
                                                               else ecfg.get("num_workers", 0)),
                          max_samples=max_samples, source=source, fixed_pose=fixed_pose, refit=refit,
                          train_blend=final_fk_blend(cfg))
    finally:
        if backbone is not None:
            backbone.features_input = was_features
    result["dataset"] = {"name": dataset_name, "split": split, "size": len(dataset),
                         "unreadable_images": int(getattr(dataset, "skipped", 0))}
    if model is not None and was_training:
        model.train()
    return result
