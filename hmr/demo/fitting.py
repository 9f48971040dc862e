"""The demo's keypoint stage: the 2D keypoint error of each exported mesh against its detection, and (``--fit``)
keypoint-guided fitting with :mod:`hmr.fitting`.

Fitting starts from the regressor's prediction (its anchor) in the same full-frame camera, all people of a frame
that share a body model in one batch. Keypoints below ``min_confidence`` (and, from the MediaPipe detectors,
keypoints outside the image) get weight 0. Video: a person whose track (:mod:`hmr.video.tracking`, the ids the
runner assigns) was in the previous frame starts from that frame's fit, with the smoothness term towards it and
fewer iterations (``tracked_config``), exactly as :func:`hmr.fitting.fit_sequence` treats a tracked person;
everyone else starts from the regressor. A fit that falls back (diverged: non-finite values; too few keypoints;
unusable start) keeps the regressor's mesh, and the record says so.

2D keypoint error: mean pixel distance between the mesh's keypoints (the detection's joint set, projected with
the full-frame camera) and the detected keypoints with confidence ≥ ``min_confidence``; also as a fraction of
the box around those keypoints (its longer side). ``regressor_*`` is the regressor's mesh, ``fitted_*`` the fit's.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from hmr.body.joint_sets import get_joint_set
from hmr.demo.boxes import Detection
from hmr.demo.predictor import DemoModel, PersonPrediction
from hmr.fitting import (FitConfig, FitParams, KeypointModel, fit_to_keypoints, left_right_check, project_keypoints,
                         synthetic_pose_gmm)
from hmr.rotations import matrix_to_axis_angle

log = logging.getLogger(__name__)
MIN_CONFIDENCE = 0.3
# The demo's settings over FitConfig.preset(kind), measured with tools/bench_real_photos.py on a synthetic-trained
# body checkpoint (weak on photos): 80 iterations and a weaker pull to the regressor (the setting
# docs/architecture.md suggests for a weak regressor) let arms the regressor raised come down to the keypoints
# (photo IoU astronaut 0.49 -> 0.63, grace_hopper 0.64 -> 0.73); the left/right label check is off because it
# swaps correct labels whenever the regressor itself confuses front and back (200 synthetic images, detected
# keypoints: MPJPE / PA-MPJPE -16 % / -13 % with it, -19 % / -18 % without; GT keypoints -40 % / -38 % vs -50 %).
DEMO_FIT = {"body": {"iterations": 80, "w_anchor_pose": 0.01, "swap_ratio": 0.0}, "hand": {}}
TRACKED_FIT = {"camera_iterations": 0, "iterations": 20}  # video frames that start from last frame's fit


def demo_fit_config(kind: str, tracked: bool = False, **overrides) -> FitConfig:
    """The demo's :class:`FitConfig` for ``kind`` (:data:`DEMO_FIT` over the preset), for tracked video frames
    (:data:`TRACKED_FIT`), with ``overrides`` last."""
    values = {**DEMO_FIT[kind], **(TRACKED_FIT if tracked else {}), **overrides}
    return FitConfig.preset(kind, **values)
STATUS_TEXT = {
    "diverged": "fit diverged (non-finite values): the regressor's mesh is kept",
    "too_few_keypoints": "too few confident keypoints to fit: the regressor's mesh is kept",
    "missed_keypoints": "the fit did not reach the keypoints (FitConfig.max_error_after): the regressor's mesh "
                        "is kept",
    "bad_start": "the regressor's prediction is unusable as a start (non-finite or behind the camera): not fitted",
    "no_keypoints": "the boxes came without keypoints (use --detector blazepose/hands, auto, or a detections "
                    "file with keypoints): not fitted",
    "unsupported_joint_set": "the body model cannot provide the detection's joint set: not fitted",
}


@dataclass
class PersonFit:
    """What the demo exports for one detection (``person``: fitted, or the regressor's prediction) and its summary
    entries (``record``: ``keypoints``, ``keypoint_error``, ``fit``)."""

    person: PersonPrediction
    record: Dict[str, object]
    status: Optional[str] = None


@dataclass
class Track:
    """One person of the previous video frame: box, exported parameters, whether they were fitted."""

    bbox: Tuple[float, float, float, float]
    params: FitParams
    fitted: bool


def keypoints_record(det: Detection) -> Optional[Dict[str, object]]:
    """The detection's keypoints for summary.json: joint set, source and ``points`` {joint name: [x, y, conf]}
    (joints the detector does not give are left out)."""
    if det.keypoints is None:
        return None
    names = get_joint_set(det.joint_set).names
    points = {n: [round(float(x), 2), round(float(y), 2), round(float(c), 4)]
              for n, (x, y, c) in zip(names, det.keypoints) if c > 0}
    return {"joint_set": det.joint_set, "source": det.source, "points": points}


def _errors(pixels: torch.Tensor, target: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """(B,) mean distance over the used keypoints (NaN where none is used)."""
    dist = torch.linalg.norm(pixels - target, dim=-1)
    count = used.sum(-1)
    return torch.where(count > 0, (dist * used).sum(-1) / count.clamp_min(1), torch.full_like(count, float("nan"),
                                                                                          dtype=dist.dtype))


class DemoFitter:
    """Keypoint errors (always) and fitting (``fit=True``) for the people of one frame; see the module docstring."""

    def __init__(self, model: DemoModel, fit: bool = False, min_confidence: float = MIN_CONFIDENCE,
                 overrides: Optional[Dict[str, float]] = None) -> None:
        self.model, self.fit = model, fit
        self.min_confidence = float(min_confidence)
        values = {**(overrides or {}), "min_confidence": self.min_confidence}
        self.config = demo_fit_config(model.kind, **values)
        self.tracked_config = demo_fit_config(model.kind, tracked=True, **values)
        self._bodies = {model.name: model.body_model}
        self._keypoint_models: Dict[Tuple[str, str], KeypointModel] = {}
        if fit and self.config.prior_components > 0:  # built (and cached) once, outside the timed fits
            synthetic_pose_gmm(model.body_model, self.config.prior_components)

    def body_model(self, name: str):
        """The body model a prediction is expressed in (the checkpoint's, or its other side for mirrored hands)."""
        if name not in self._bodies:
            from hmr import body
            cfg = self.model.config["body_model"]
            self._bodies[name] = body.load(name, model_dir=cfg.get("model_dir"), num_betas=int(cfg["num_betas"]))
        return self._bodies[name]

    def _keypoint_model(self, name: str, joint_set: str) -> KeypointModel:
        key = (name, joint_set)
        if key not in self._keypoint_models:
            self._keypoint_models[key] = KeypointModel(self.body_model(name), joint_set)
        return self._keypoint_models[key]

    def process(self, detections: Sequence[Detection], people: Sequence[PersonPrediction],
                previous: Optional[Dict[int, Track]] = None, track_ids: Optional[Sequence[int]] = None,
                image_size: Optional[Tuple[int, int]] = None) -> Tuple[List[PersonFit], Dict[int, Track]]:
        """(one :class:`PersonFit` per person, this frame's fits by track id for the next frame). ``previous``:
        the previous frame's (video), keyed by the track ids ``track_ids`` gives this frame's people; None for a
        still image. ``image_size`` (height, width): keypoints detected beyond the image keep the fitted
        keypoints beyond it (the truncation term, ``FitConfig.w_outside``)."""
        out = [PersonFit(p, {"keypoints": keypoints_record(d)} if d.keypoints is not None else {})
               for d, p in zip(detections, people)]
        ids = list(track_ids) if track_ids is not None else list(range(len(people)))
        match = [i if previous and i in previous else None for i in ids]
        groups: Dict[Tuple[str, str, bool], List[int]] = {}
        for i, (det, person) in enumerate(zip(detections, people)):
            if det.keypoints is None:
                self._not_fitted(out[i], "no_keypoints")
                continue
            try:
                self._keypoint_model(person.body_model, det.joint_set)
            except KeyError:
                self._not_fitted(out[i], "unsupported_joint_set")
                continue
            groups.setdefault((person.body_model, det.joint_set, match[i] is not None), []).append(i)
        for (name, joint_set, tracked), index in groups.items():
            self._group(out, index, [detections[i] for i in index], name, joint_set,
                        [previous[match[i]] for i in index] if tracked else None, image_size)
        fitted = {i: Track(d.bbox, FitParams.from_predictions([f.person]), f.status == "ok")
                  for i, d, f in zip(ids, detections, out)}
        return out, fitted

    def _not_fitted(self, item: PersonFit, status: str) -> None:
        item.status = status
        if self.fit:
            item.record["fit"] = {"status": status, "fell_back": True, "message": STATUS_TEXT[status]}

    def _group(self, out: List[PersonFit], index: List[int], dets: List[Detection], name: str, joint_set: str,
               previous: Optional[List[Track]], image_size: Optional[Tuple[int, int]]) -> None:
        bm, km = self.body_model(name), self._keypoint_model(name, joint_set)
        people = [out[i].person for i in index]
        kp = torch.as_tensor(np.stack([d.keypoints for d in dets]), dtype=torch.float32)
        target, conf = kp[..., :2], torch.where(kp[..., 2] >= self.min_confidence, kp[..., 2], torch.zeros(()))
        used = conf > 0
        box = torch.as_tensor([_box_side(d, u.numpy()) for d, u in zip(dets, used)], dtype=torch.float32)
        K = torch.as_tensor(np.stack([p.K for p in people]), dtype=torch.float32)
        anchor = FitParams.from_predictions(people)
        before = _errors(project_keypoints(bm, anchor, K, joint_set), target, used)
        for j, i in enumerate(index):
            out[i].record["keypoint_error"] = {
                "joint_set": joint_set, "keypoints_used": int(used[j].sum()), "min_confidence": self.min_confidence,
                "box_side_px": round(float(box[j]), 2), **_error_fields("regressor", before[j], box[j])}
        if not self.fit:
            return
        start = anchor
        if previous is not None:
            prev = FitParams(*(torch.cat([getattr(t.params, f) for t in previous]) for f in ("rotmats", "betas",
                                                                                               "transl")))
            fitted = torch.tensor([t.fitted for t in previous])
            start = prev.where(fitted, anchor)
        config = self.tracked_config if previous is not None else self.config
        frame = None if image_size is None else torch.tensor([0.0, 0.0, float(image_size[1]), float(image_size[0])])
        result = fit_to_keypoints(bm, start, target, conf, K, joint_set, config, anchor=anchor,
                                  previous=None if previous is None else prev, box_size=box, keypoint_model=km,
                                  frame=frame)
        finite = torch.isfinite(result.vertices).flatten(1).all(1)
        swapped = getattr(result, "swapped", torch.zeros(len(index), dtype=torch.bool))
        if bool(swapped.any()):  # score both meshes against the labels the fit used
            target, used = _fit_labels(bm, start, target, conf, K, box, joint_set, config)
            before = _errors(project_keypoints(bm, anchor, K, joint_set), target, used)
        for j, i in enumerate(index):
            status = result.status[j] if bool(finite[j]) else "diverged"
            item = out[i]
            item.status = status
            fit = {"status": status, "fell_back": status != "ok", "seconds": round(result.seconds_per_person, 4),
                   "batch": len(index), "iterations": config.camera_iterations + config.iterations,
                   "start": "regressor" if previous is None or not previous[j].fitted else "previous frame's fit"}
            if status == "ok":
                item.person = _fitted_person(item.person, result, j, bm, self.model.keypoint_set)
                after = _errors(result.keypoints_2d[j:j + 1], target[j:j + 1], used[j:j + 1])[0]
            else:
                fit["message"] = STATUS_TEXT[status]
                after = before[j]
                level = logging.WARNING if status == "diverged" else logging.INFO
                log.log(level, "person at box %s: %s", [round(v, 1) for v in dets[j].bbox], STATUS_TEXT[status])
            if bool(swapped[j]):
                fit["left_right_swapped"] = True
                item.record["keypoint_error"].update(_error_fields("regressor", before[j], box[j]),
                                                     keypoints_used=int(used[j].sum()), labels="swapped by the fit")
            item.record["fit"] = fit
            item.record["keypoint_error"].update(_error_fields("fitted", after, box[j]))


def _fit_labels(body_model, start: FitParams, target: torch.Tensor, conf: torch.Tensor, K: torch.Tensor,
                box: torch.Tensor, joint_set: str, config: FitConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """(keypoints, used) with left/right labels as :func:`hmr.fitting.fit_to_keypoints` used them after its
    left/right check (the same check, repeated against the same start)."""
    start_px = project_keypoints(body_model, start.projected(), K, joint_set)
    keypoints, weights, _ = left_right_check(start_px, target, conf, box, joint_set, config)
    return keypoints, weights > 0


def _box_side(det: Detection, used: np.ndarray) -> float:
    """Longer side of the box around the used keypoints (the detection box when fewer than two are used)."""
    pts = det.keypoints[used, :2]
    if len(pts) >= 2:
        side = float((pts.max(axis=0) - pts.min(axis=0)).max())
        if side >= 1.0:
            return side
    return float(max(det.bbox[2], det.bbox[3]))


def _error_fields(prefix: str, error: torch.Tensor, box: torch.Tensor) -> Dict[str, Optional[float]]:
    value = float(error)
    if not np.isfinite(value):
        return {f"{prefix}_px": None, f"{prefix}_box": None}
    return {f"{prefix}_px": round(value, 2), f"{prefix}_box": round(value / float(box), 4)}


def _fitted_person(person: PersonPrediction, result, j: int, body_model, keypoint_set: str) -> PersonPrediction:
    """``person`` with the fit's parameters and camera-frame mesh."""
    params = result.params.select(torch.tensor([j]))
    K = torch.as_tensor(person.K, dtype=torch.float32)
    kp2d = project_keypoints(body_model, params, K, keypoint_set)[0]
    f = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    return dataclasses.replace(person, vertices=f(result.vertices[j]), rotmats=f(params.rotmats[0]),
                               axis_angle=f(matrix_to_axis_angle(params.rotmats[0])), betas=f(params.betas[0]),
                               transl=f(params.transl[0]), keypoints_2d=f(kp2d))
