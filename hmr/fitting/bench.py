"""Benchmark of keypoint fitting on the synthetic test sets: GT labels, a regressor-like initialisation
(a trained checkpoint's predictions or perturbed ground truth), keypoint conditions (GT, noisy, occluded with
low-confidence wrong keypoints) and MPJPE / PA-MPJPE before and after the fit.

Protocols (named in every result): bodies — ``synth_body_test`` (SMPL-24 kinematic joints of the open-smpl
mesh, pelvis-centred MPJPE, SPIN similarity alignment for PA-MPJPE); hands — FreiHAND-21 joints, MPJPE
wrist-centred without alignment, PA-MPJPE with FreiHAND's official alignment (``synth_hand_eval``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from hmr import metrics as M
from hmr.fitting.fit import fit_to_keypoints, project_keypoints
from hmr.fitting.keypoint_model import KeypointModel
from hmr.fitting.objective import FitConfig
from hmr.fitting.params import FitParams
from hmr.fitting.pose_prior import synthetic_pose_gmm
from hmr.rotations import axis_angle_to_matrix

PROTOCOL_TEXT = {
    "body": "synth_body_test: smpl24 joints of the open-smpl mesh; MPJPE pelvis-centred, PA-MPJPE SPIN similarity "
            "alignment; mm",
    "hand": "synth_hand: freihand21 joints; MPJPE wrist-centred (no alignment), PA-MPJPE FreiHAND official "
            "alignment (synth_hand_eval); mm",
}


@dataclass
class SyntheticLabels:
    """GT of N samples: parameters (right-hand parameters for hands), intrinsics (N, 3, 3), 2D keypoints
    (N, K, 2) pixels of ``joint_set`` with ``visible`` (N, K) (in front of the camera and inside the image) and
    each image's ``frame`` (N, 4) = (0, 0, width, height) for the fit's truncation term."""

    kind: str
    joint_set: str
    params: FitParams
    K: Tensor
    keypoints_2d: Tensor
    visible: Tensor
    frame: Tensor

    def __len__(self) -> int:
        return len(self.params)


def load_synthetic_labels(set_dir: Path, split: str = "test", limit: Optional[int] = None) -> SyntheticLabels:
    """Labels of a synthetic set made by ``tools/make_synthetic.py``: a body set (``<split>.npz``, SPIN keys +
    ``rotmat``/``transl``/``K``) or a hand set (FreiHAND layout + ``<prefix>_extra.npz``)."""
    set_dir = Path(set_dir)
    n = slice(None, limit)
    t = lambda a: torch.as_tensor(np.asarray(a)[n], dtype=torch.float32)  # noqa: E731
    npz = set_dir / f"{split}.npz"
    if npz.exists():
        data = np.load(npz)
        params = FitParams(t(data["rotmat"]), t(data["shape"]), t(data["transl"]))
        part = t(data["part"])
        return SyntheticLabels("body", "spin24", params, t(data["K"]), part[..., :2], part[..., 2] > 0,
                               _frames(t(data["img_size"])))
    prefix = {"train": "training", "val": "validation", "test": "evaluation"}[split]
    if not (set_dir / f"{prefix}_K.json").exists():
        raise FileNotFoundError(f"{set_dir}: neither {npz.name} (body set) nor {prefix}_K.json (hand set) found; "
                                "make one with tools/make_synthetic.py")
    read = lambda suffix: np.asarray(json.loads((set_dir / f"{prefix}_{suffix}.json").read_text()))  # noqa: E731
    extra = np.load(set_dir / f"{prefix}_extra.npz")
    K, xyz = t(read("K")), t(read("xyz"))
    mano = read("mano")
    params = FitParams(t(extra["rotmat"]), t(mano.reshape(len(mano), -1)[:, 48:58]), t(extra["transl"]))
    uvw = xyz @ K.transpose(1, 2)
    uv = uvw[..., :2] / uvw[..., 2:]
    h, w = t(extra["img_size"])[:, 0:1], t(extra["img_size"])[:, 1:2]
    visible = (uvw[..., 2] > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
    return SyntheticLabels("hand", "freihand21", params, K, uv, visible, _frames(t(extra["img_size"])))


def _frames(img_size: Tensor) -> Tensor:
    """(N, 4) image frames (0, 0, width, height) from (N, 2) image sizes (height, width)."""
    zeros = torch.zeros_like(img_size[:, :1])
    return torch.cat([zeros, zeros, img_size[:, 1:2], img_size[:, 0:1]], dim=1)


def perturb(params: FitParams, seed: int, joint_deg: float = 15.0, orient_deg: float = 10.0, betas_std: float = 0.5,
            depth_frac: float = 0.1, shift_frac: float = 0.02) -> FitParams:
    """A regressor-like initialisation: each joint rotated by a random axis-angle (each component N(0, σ/√3), so
    the RMS angle is σ degrees), betas + N(0, ``betas_std``), depth × exp(N(0, ``depth_frac``)), image-plane
    direction + N(0, ``shift_frac``)."""
    gen = torch.Generator().manual_seed(seed)
    B, J = params.rotmats.shape[:2]
    sigma = torch.full((J,), math.radians(joint_deg))
    sigma[0] = math.radians(orient_deg)
    noise = torch.randn(B, J, 3, generator=gen) * sigma[None, :, None] / math.sqrt(3.0)
    rot = params.rotmats @ axis_angle_to_matrix(noise)
    betas = params.betas + betas_std * torch.randn(params.betas.shape, generator=gen)
    t = params.transl
    direction = t[:, :2] / t[:, 2:] + shift_frac * torch.randn(B, 2, generator=gen)
    depth = t[:, 2] * torch.exp(depth_frac * torch.randn(B, generator=gen))
    return FitParams(rot, betas, torch.cat([direction * depth[:, None], depth[:, None]], dim=1))


def mean_pose_init(params: FitParams, seed: int, orient_deg: float = 10.0, depth_frac: float = 0.1) -> FitParams:
    """A weak-regressor initialisation: every sample gets the set's mean local pose (chordal mean projected to
    SO(3)) and mean shape, with the GT global orientation and camera perturbed as in :func:`perturb`."""
    from hmr.rotations import special_procrustes
    moved = perturb(params, seed, joint_deg=0.0, orient_deg=orient_deg, betas_std=0.0, depth_frac=depth_frac)
    B = len(params)
    local = special_procrustes(params.rotmats[:, 1:].mean(0, keepdim=True)).expand(B, -1, -1, -1)
    return FitParams(torch.cat([moved.rotmats[:, :1], local], dim=1), params.betas.mean(0).expand(B, -1).clone(),
                     moved.transl)


def corrupt_keypoints(keypoints: Tensor, confidence: Tensor, box: Tensor, seed: int, noise: float = 0.0,
                      wrong_share: float = 0.0, wrong_confidence: float = 0.05):
    """(keypoints, confidence) with Gaussian noise of ``noise`` × box side (pixels) and a share of keypoints moved
    to random places in the box with confidence ``wrong_confidence`` (occlusions a detector guesses at)."""
    gen = torch.Generator().manual_seed(seed)
    kp = keypoints + noise * box[:, None, None] * torch.randn(keypoints.shape, generator=gen)
    wrong = torch.rand(confidence.shape, generator=gen) < wrong_share
    centre = keypoints.mean(1, keepdim=True)
    anywhere = centre + (torch.rand(keypoints.shape, generator=gen) - 0.5) * box[:, None, None]
    kp = torch.where(wrong[..., None], anywhere, kp)
    conf = torch.where(wrong, torch.full_like(confidence, wrong_confidence), confidence)
    return kp, conf, wrong


def score(body_model, kind: str, pred: FitParams, gt: FitParams) -> Dict[str, np.ndarray]:
    """Per-sample ``mpjpe`` and ``pa_mpjpe`` (metres) under the kind's protocol (see the module docstring)."""
    set_name = "smpl24" if kind == "body" else "freihand21"
    with torch.no_grad():
        model = KeypointModel(body_model, set_name)
        pj, gj = model(pred.rotmats, pred.betas), model(gt.rotmats, gt.betas)
    if kind == "body":  # exactly synth_body_test's computation (smpl24, pelvis = joint 0, SPIN alignment)
        return {"mpjpe": M.mpjpe(pj, gj, root=0), "pa_mpjpe": M.pa_mpjpe(pj, gj)}
    return {"mpjpe": M.mpjpe(pj, gj, root=0), "pa_mpjpe": M.freihand_errors(pj, gj)["pa_mpjpe"]}


def _summary(errors: Dict[str, np.ndarray]) -> Dict[str, float]:
    return {f"{k}_mm": round(1000.0 * float(np.mean(v)), 2) for k, v in errors.items()}


CONDITIONS = {
    "gt": "GT 2D keypoints (the visible ones): the ceiling of keypoint fitting",
    "noisy": "GT 2D keypoints + Gaussian noise",
    "occluded": "noisy, and a share of the keypoints moved to wrong places with low confidence",
    "detected": "keypoints from a detector (file)",
}


def run_benchmark(body_model, labels: SyntheticLabels, init: FitParams, config: Optional[FitConfig] = None,
                  conditions: Sequence[str] = ("gt", "noisy", "occluded"), batch_size: int = 8, noise: float = 0.02,
                  wrong_share: float = 0.2, wrong_confidence: float = 0.05, seed: int = 0,
                  init_name: str = "perturbed GT", detections: Optional[Tuple[str, Tensor, Tensor]] = None) -> Dict:
    """Fit ``init`` to the labels' keypoints under each condition (:data:`CONDITIONS`; ``noise`` and the
    wrong keypoints' spread are fractions of the box side; ``detected`` needs ``detections`` = (joint set,
    keypoints (N, K, 2) pixels, confidence (N, K))) and report errors before/after (mm), 2D errors, fallbacks
    and seconds per person-frame (fits of ``batch_size`` people at a time)."""
    config = FitConfig.preset(labels.kind) if config is None else config
    box = _boxes(body_model, labels)
    if config.prior_components > 0:
        synthetic_pose_gmm(body_model, config.prior_components)  # built once, outside the timed fits
    before = score(body_model, labels.kind, init, labels.params)
    report = {"protocol": PROTOCOL_TEXT[labels.kind], "samples": len(labels), "init": init_name,
              "batch_size": batch_size, "config": vars(config), "before": _summary(before), "conditions": {}}
    for name in conditions:
        joint_set, conf, kp = labels.joint_set, labels.visible.float(), labels.keypoints_2d
        if name in ("noisy", "occluded"):
            kp, conf, _ = corrupt_keypoints(kp, conf, box, seed + 1, noise, wrong_share if name == "occluded" else 0.0,
                                            wrong_confidence)
        elif name == "detected":
            if detections is None:
                raise ValueError("condition 'detected' needs detections (joint set, keypoints, confidence)")
            joint_set, kp, conf = detections[0], detections[1][:len(labels)], detections[2][:len(labels)]
        elif name != "gt":
            raise ValueError(f"unknown condition {name!r}; known: {sorted(CONDITIONS)}")
        keypoint_model = KeypointModel(body_model, joint_set)
        fitted, seconds, fell_back, swapped, err = [], 0.0, 0, 0, {"px_before": [], "px_after": []}
        for start in range(0, len(labels), batch_size):
            sl = slice(start, start + batch_size)
            result = fit_to_keypoints(body_model, init.select(sl), kp[sl], conf[sl], labels.K[sl],
                                      joint_set, config, box_size=box[sl], keypoint_model=keypoint_model,
                                      frame=labels.frame[sl])
            fitted.append(result.params)
            seconds += result.seconds
            fell_back += int(result.fell_back.sum())
            swapped += int(result.swapped.sum())
            err["px_before"].append(result.error_px_before)
            err["px_after"].append(result.error_px_after)
        params = FitParams(*(torch.cat([getattr(p, f) for p in fitted]) for f in ("rotmats", "betas", "transl")))
        after = score(body_model, labels.kind, params, labels.params)
        report["conditions"][name] = {
            "what": CONDITIONS[name], "joint_set": joint_set, "after": _summary(after),
            "mpjpe_change_pct": round(100.0 * (after["mpjpe"].mean() / before["mpjpe"].mean() - 1.0), 1),
            "pa_mpjpe_change_pct": round(100.0 * (after["pa_mpjpe"].mean() / before["pa_mpjpe"].mean() - 1.0), 1),
            "keypoint_error_px_before": round(float(torch.cat(err["px_before"]).nanmean()), 2),
            "keypoint_error_px_after": round(float(torch.cat(err["px_after"]).nanmean()), 2),
            "fell_back": fell_back, "left_right_swapped": swapped,
            "seconds_per_person_frame": round(seconds / len(labels), 4)}
    return report


def _boxes(body_model, labels: SyntheticLabels) -> Tensor:
    """Per-sample box side (pixels): extent of the GT projected keypoints."""
    px = project_keypoints(body_model, labels.params, labels.K, labels.joint_set)
    return (px.amax(1) - px.amin(1)).amax(-1).clamp_min(1.0)


def detect_keypoints(set_dir: Path, kind: str, split: str = "test", limit: Optional[int] = None,
                     joint_set: Optional[str] = None) -> Tuple[str, Tensor, Tensor, int]:
    """2D keypoints detected on a synthetic set's images with :mod:`hmr.keypoints` (BlazePose for bodies, with
    landmark visibility as confidence; MediaPipe Hands for hands, with the hand flag as confidence), the first
    detection per image. Returns (joint set, keypoints (N, K, 2), confidence (N, K) — 0 where the detector's map
    has no counterpart or nothing was detected, number of images without a detection)."""
    import cv2
    from hmr.keypoints import BlazePose, MediaPipeHands, map_body, map_hand
    set_dir = Path(set_dir)
    if kind == "body":
        names = [str(n) for n in np.load(set_dir / f"{split}.npz")["imgname"][:limit]]
        detector, joint_set = BlazePose(), joint_set or "openpose25"
    else:
        prefix = {"train": "training", "val": "validation", "test": "evaluation"}[split]
        count = len(json.loads((set_dir / f"{prefix}_K.json").read_text()))
        names = [f"{prefix}/rgb/{i:08d}.jpg" for i in range(count)][:limit]
        detector, joint_set = MediaPipeHands(), joint_set or "freihand21"
    keypoints, confidence, missed = [], [], 0
    for name in names:
        image = cv2.imread(str(set_dir / name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {set_dir / name}")
        found = detector(image[..., ::-1].copy())
        if not found:
            missed += 1
            keypoints.append(None)
            confidence.append(None)
            continue
        best = found[0]
        mapped = (map_body(best.keypoints, best.visibility, joint_set) if kind == "body"
                  else map_hand(best.keypoints, best.score, joint_set))
        keypoints.append(mapped.keypoints)
        confidence.append(np.where(mapped.mask, mapped.confidence, 0.0))
    size = next((len(c) for c in confidence if c is not None), None)
    if size is None:
        raise ValueError(f"{set_dir}: nothing detected on {len(names)} images")
    kp = np.stack([k if k is not None else np.zeros((size, 2)) for k in keypoints])
    conf = np.stack([c if c is not None else np.zeros(size) for c in confidence])
    return joint_set, torch.as_tensor(kp, dtype=torch.float32), torch.as_tensor(conf, dtype=torch.float32), missed


def regressor_init(checkpoint: str, set_dir: Path, limit: Optional[int], device: str = "cpu"):
    """(body model, predictions as FitParams) of a trained checkpoint on the first ``limit`` test samples of a
    synthetic set (the evaluation loop's inference path: representation's inference rotation, CLIFF camera)."""
    from hmr.config import Config, merge
    from hmr.engine.eval_job import load_trained
    from hmr.engine.evaluator import evaluate_config
    cfg, model, body_model, representation = load_trained(checkpoint, None, device)
    set_dir = Path(set_dir).resolve()
    if body_model.kind == "body":
        name, spec = "synth_body", {"npz": str(set_dir / "{split}.npz"), "images": str(set_dir)}
    else:
        name, spec = "synth_hand", {"root": str(set_dir)}
    cfg = Config(merge(cfg, {"data": {"sets": {name: spec}}}))
    started = time.perf_counter()
    raw = evaluate_config(cfg, model, body_model, representation, name, "test", limit)["raw"]
    t = lambda k: torch.as_tensor(raw[k], dtype=torch.float32)  # noqa: E731
    order = np.argsort(raw["index"])
    params = FitParams(t("pred_rotmats"), t("pred_betas"), t("pred_transl")).select(torch.as_tensor(order))
    return body_model, params, time.perf_counter() - started
